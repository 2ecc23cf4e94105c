// Kernels for sparse optimizer updates of EmbeddingVariables. The update
// rules are the engine's (csrc/embedding/optimizer_math.h); this file checks
// inputs, resolves slot columns and shards the rows over the thread pool.
#define EIGEN_USE_THREADS

#include <array>
#include <memory>
#include <string>

#include "csrc/embedding/embedding_table.h"
#include "csrc/embedding/optimizer_math.h"
#include "csrc/ops/embedding_var.h"
#include "csrc/ops/kernel_util.h"
#include "csrc/ops/optimizer_util.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace deeprec {
namespace {

using embedding::RecordView;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::core::RefCountPtr;
namespace errors = tensorflow::errors;

// Resolves the variable (input 0) and kSlots slot inputs (1..kSlots) to one
// table and its columns, and checks the gradient/indices inputs.
template <typename K, int kSlots>
class KvApplyOp : public OpKernel {
 public:
  explicit KvApplyOp(OpKernelConstruction* ctx, int grad_input,
                     int indices_input, int step_input)
      : OpKernel(ctx),
        grad_input_(grad_input),
        indices_input_(indices_input),
        step_input_(step_input) {}

  void Compute(OpKernelContext* ctx) override {
    RefCountPtr<EmbeddingVar<K>> var;
    std::shared_ptr<embedding::EmbeddingTable<K>> table;
    OP_REQUIRES_OK(ctx, LookupEmbeddingVar<K>(ctx, 0, &var, &table));
    OP_REQUIRES(ctx, var->column() == 0,
                errors::InvalidArgument(
                    type_string(), ": var '", HandleFromInput(ctx, 0).name(),
                    "' is an optimizer slot, not an EmbeddingVariable"));
    std::array<int, kSlots + 1> columns{};
    for (int s = 1; s <= kSlots; ++s) {
      RefCountPtr<EmbeddingVar<K>> slot;
      std::shared_ptr<embedding::EmbeddingTable<K>> slot_table;
      OP_REQUIRES_OK(ctx, LookupEmbeddingVar<K>(ctx, s, &slot, &slot_table));
      OP_REQUIRES(ctx, slot_table == table && slot->column() > 0,
                  errors::InvalidArgument(
                      type_string(), ": '", HandleFromInput(ctx, s).name(),
                      "' is not a slot of EmbeddingVariable '",
                      HandleFromInput(ctx, 0).name(), "'"));
      columns[s] = slot->column();
    }
    const Tensor& grad = ctx->input(grad_input_);
    const Tensor& indices = ctx->input(indices_input_);
    const int64_t n = indices.NumElements();
    const int64_t dim = table->dim();
    OP_REQUIRES(
        ctx, grad.NumElements() == n * dim && grad.dims() >= 1,
        errors::InvalidArgument(
            type_string(), ": grad of shape ", grad.shape().DebugString(),
            " does not match ", n, " indices of EmbeddingVariable '",
            HandleFromInput(ctx, 0).name(), "' with dim ", dim));
    Params params;
    params.step = ctx->input(step_input_).scalar<int64_t>()();
    OP_REQUIRES_OK(ctx, ReadHyperParameters(ctx, &params));
    const int64_t step = params.step;
    const K* keys = indices.flat<K>().data();
    const float* g = grad.flat<float>().data();
    table->ApplyGradients(
        keys, n, g, step,
        [&](const RecordView& record, const float* row) {
          ApplyRow(record, columns, params, row, dim);
        },
        PoolRunner(ctx, ShardTaskCost(n, dim * (kSlots + 2))));
  }

 protected:
  // Per-call hyperparameters; kept out of members because one kernel object
  // may run concurrently in several steps.
  struct Params {
    std::array<float, 6> f{};
    int64_t step = -1;   // this apply's global step
    int64_t period = 1;  // AdagradDecay's decay period, in steps
  };
  using Columns = std::array<int, kSlots + 1>;

  static float Scalar(OpKernelContext* ctx, int input) {
    return ctx->input(input).scalar<float>()();
  }
  virtual tensorflow::Status ReadHyperParameters(OpKernelContext* ctx,
                                                 Params* p) const = 0;
  virtual void ApplyRow(const RecordView& record, const Columns& columns,
                        const Params& p, const float* grad,
                        int64_t dim) const = 0;

 private:
  const int grad_input_;
  const int indices_input_;
  const int step_input_;
};

template <typename K>
class GradientDescentOp : public KvApplyOp<K, 0> {
 public:
  explicit GradientDescentOp(OpKernelConstruction* ctx)
      : KvApplyOp<K, 0>(ctx, 2, 3, 4) {}

 protected:
  using typename KvApplyOp<K, 0>::Params;
  using typename KvApplyOp<K, 0>::Columns;

  tensorflow::Status ReadHyperParameters(OpKernelContext* ctx,
                                         Params* p) const override {
    p->f[0] = this->Scalar(ctx, 1);
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns&, const Params& p,
                const float* grad, int64_t dim) const override {
    embedding::ApplyGradientDescent(r.column(0), grad, dim, p.f[0]);
  }
};

template <typename K>
class AdagradOp : public KvApplyOp<K, 1> {
 public:
  explicit AdagradOp(OpKernelConstruction* ctx)
      : KvApplyOp<K, 1>(ctx, 3, 4, 5) {}

 protected:
  using typename KvApplyOp<K, 1>::Params;
  using typename KvApplyOp<K, 1>::Columns;

  tensorflow::Status ReadHyperParameters(OpKernelContext* ctx,
                                         Params* p) const override {
    p->f[0] = this->Scalar(ctx, 2);
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns& c, const Params& p,
                const float* grad, int64_t dim) const override {
    embedding::ApplyAdagrad(r.column(0), r.column(c[1]), grad, dim, p.f[0]);
  }
};

template <typename K>
class MomentumOp : public KvApplyOp<K, 1> {
 public:
  explicit MomentumOp(OpKernelConstruction* ctx)
      : KvApplyOp<K, 1>(ctx, 3, 4, 6) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_nesterov", &use_nesterov_));
  }

 protected:
  using typename KvApplyOp<K, 1>::Params;
  using typename KvApplyOp<K, 1>::Columns;

  tensorflow::Status ReadHyperParameters(OpKernelContext* ctx,
                                         Params* p) const override {
    p->f[0] = this->Scalar(ctx, 2);
    p->f[1] = this->Scalar(ctx, 5);
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns& c, const Params& p,
                const float* grad, int64_t dim) const override {
    embedding::ApplyMomentum(r.column(0), r.column(c[1]), grad, dim, p.f[0],
                             p.f[1], use_nesterov_);
  }

 private:
  bool use_nesterov_ = false;
};

// Validates the Adam powers and returns the bias-corrected step
// lr * sqrt(1 - beta2_power) / (1 - beta1_power), as TensorFlow computes it.
tensorflow::Status AdamStep(const std::string& op, float lr, float beta1_power,
                            float beta2_power, float* alpha) {
  if (!(beta1_power < 1.0f) || !(beta2_power < 1.0f)) {
    return errors::InvalidArgument(op,
                                   ": beta1_power and beta2_power must be "
                                   "< 1, got ",
                                   beta1_power, " and ", beta2_power);
  }
  *alpha = lr * std::sqrt(1.0f - beta2_power) / (1.0f - beta1_power);
  return tensorflow::OkStatus();
}

template <typename K>
class AdamOp : public KvApplyOp<K, 2> {
 public:
  explicit AdamOp(OpKernelConstruction* ctx) : AdamOp(ctx, 9, 10, 11) {}

 protected:
  using typename KvApplyOp<K, 2>::Params;
  using typename KvApplyOp<K, 2>::Columns;

  AdamOp(OpKernelConstruction* ctx, int grad, int indices, int step)
      : KvApplyOp<K, 2>(ctx, grad, indices, step) {}

  // Inputs 3..8: beta1_power, beta2_power, lr, beta1, beta2, epsilon.
  tensorflow::Status ReadHyperParameters(OpKernelContext* ctx,
                                         Params* p) const override {
    TF_RETURN_IF_ERROR(AdamStep(this->type_string(), this->Scalar(ctx, 5),
                                this->Scalar(ctx, 3), this->Scalar(ctx, 4),
                                &p->f[0]));
    p->f[1] = this->Scalar(ctx, 6);
    p->f[2] = this->Scalar(ctx, 7);
    p->f[3] = this->Scalar(ctx, 8);
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns& c, const Params& p,
                const float* grad, int64_t dim) const override {
    embedding::ApplyAdam(r.column(0), r.column(c[1]), r.column(c[2]), grad, dim,
                         p.f[0], p.f[1], p.f[2], p.f[3]);
  }
};

template <typename K>
class AdamWOp : public AdamOp<K> {
 public:
  explicit AdamWOp(OpKernelConstruction* ctx) : AdamOp<K>(ctx, 10, 11, 12) {}

 protected:
  using typename AdamOp<K>::Params;
  using typename AdamOp<K>::Columns;

  tensorflow::Status ReadHyperParameters(OpKernelContext* ctx,
                                         Params* p) const override {
    TF_RETURN_IF_ERROR(AdamOp<K>::ReadHyperParameters(ctx, p));
    p->f[4] = this->Scalar(ctx, 9);
    if (!(p->f[4] >= 0.0f)) {
      return errors::InvalidArgument(
          "KvResourceSparseApplyAdamW: weight_decay must be >= 0, got ",
          p->f[4]);
    }
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns& c, const Params& p,
                const float* grad, int64_t dim) const override {
    embedding::ApplyAdamW(r.column(0), r.column(c[1]), r.column(c[2]), grad,
                          dim, p.f[0], p.f[1], p.f[2], p.f[3], p.f[4]);
  }
};

template <typename K>
class AdamAsyncOp : public KvApplyOp<K, 2> {
 public:
  explicit AdamAsyncOp(OpKernelConstruction* ctx)
      : KvApplyOp<K, 2>(ctx, 9, 10, 11) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("apply_sparse_rmsprop", &rmsprop_));
  }

 protected:
  using typename KvApplyOp<K, 2>::Params;
  using typename KvApplyOp<K, 2>::Columns;

  tensorflow::Status ReadHyperParameters(OpKernelContext* ctx,
                                         Params* p) const override {
    const float beta1 = this->Scalar(ctx, 6);
    const float beta2 = this->Scalar(ctx, 7);
    // The powers are read and advanced in one step under their locks, so
    // concurrent applies each use a distinct power (no global dependency).
    float beta1_power = 0, beta2_power = 0;
    TF_RETURN_IF_ERROR(AdvancePower(ctx, 3, beta1, &beta1_power));
    TF_RETURN_IF_ERROR(AdvancePower(ctx, 4, beta2, &beta2_power));
    TF_RETURN_IF_ERROR(AdamStep(this->type_string(), this->Scalar(ctx, 5),
                                beta1_power, beta2_power, &p->f[0]));
    p->f[1] = beta1;
    p->f[2] = beta2;
    p->f[3] = this->Scalar(ctx, 8);
    p->f[4] = this->Scalar(ctx, 5);
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns& c, const Params& p,
                const float* grad, int64_t dim) const override {
    if (rmsprop_) {
      embedding::ApplyRmsPropAsync(r.column(0), r.column(c[1]), r.column(c[2]),
                                   grad, dim, p.f[4], p.f[1], p.f[2], p.f[3]);
    } else {
      embedding::ApplyAdam(r.column(0), r.column(c[1]), r.column(c[2]), grad,
                           dim, p.f[0], p.f[1], p.f[2], p.f[3]);
    }
  }

 private:
  bool rmsprop_ = false;
};

template <typename K>
class AdagradDecayOp : public KvApplyOp<K, 1> {
 public:
  explicit AdagradDecayOp(OpKernelConstruction* ctx)
      : KvApplyOp<K, 1>(ctx, 6, 7, 8) {}

 protected:
  using typename KvApplyOp<K, 1>::Params;
  using typename KvApplyOp<K, 1>::Columns;

  tensorflow::Status ReadHyperParameters(OpKernelContext* ctx,
                                         Params* p) const override {
    p->f[0] = this->Scalar(ctx, 2);
    p->period = ctx->input(3).scalar<int64_t>()();
    p->f[1] = this->Scalar(ctx, 4);
    p->f[2] = this->Scalar(ctx, 5);
    return ValidateDecay(this->type_string(), p->step, p->period, p->f[1],
                         p->f[2]);
  }
  void ApplyRow(const RecordView& r, const Columns& c, const Params& p,
                const float* grad, int64_t dim) const override {
    // The record's version is the step of its previous update (the table
    // sets the new one after this call), which tells the periods elapsed.
    const auto decay = static_cast<float>(
        embedding::DecayFactor(r.version(), p.step, p.period, p.f[1]));
    embedding::ApplyAdagradDecay(r.column(0), r.column(c[1]), grad, dim, p.f[0],
                                 decay, p.f[2]);
  }
};

template <typename K>
class FtrlOp : public KvApplyOp<K, 2> {
 public:
  explicit FtrlOp(OpKernelConstruction* ctx) : KvApplyOp<K, 2>(ctx, 3, 4, 10) {}

 protected:
  using typename KvApplyOp<K, 2>::Params;
  using typename KvApplyOp<K, 2>::Columns;

  tensorflow::Status ReadHyperParameters(OpKernelContext* ctx,
                                         Params* p) const override {
    for (int i = 0; i < 5; ++i) p->f[i] = this->Scalar(ctx, 5 + i);
    const float lr = p->f[0], l1 = p->f[1], l2 = p->f[2], shrinkage = p->f[3],
                lr_power = p->f[4];
    if (!(lr > 0) || l1 < 0 || l2 < 0 || shrinkage < 0 || lr_power > 0) {
      return errors::InvalidArgument(
          "KvResourceSparseApplyFtrlV2: need lr > 0, l1 >= 0, l2 >= 0, "
          "l2_shrinkage >= 0 and lr_power <= 0; got lr=",
          lr, " l1=", l1, " l2=", l2, " l2_shrinkage=", shrinkage,
          " lr_power=", lr_power);
    }
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns& c, const Params& p,
                const float* grad, int64_t dim) const override {
    embedding::ApplyFtrl(r.column(0), r.column(c[1]), r.column(c[2]), grad, dim,
                         p.f[0], p.f[1], p.f[2], p.f[3], p.f[4]);
  }
};

#define REGISTER_APPLY(NAME, KERNEL, K)                       \
  REGISTER_KERNEL_BUILDER(Name(NAME)                          \
                              .Device(tensorflow::DEVICE_CPU) \
                              .TypeConstraint<K>("Tkeys")     \
                              .TypeConstraint<float>("T"),    \
                          KERNEL<K>);
#define REGISTER_ALL_APPLY(K)                                                  \
  REGISTER_APPLY("KvResourceSparseApplyGradientDescent", GradientDescentOp, K) \
  REGISTER_APPLY("KvResourceSparseApplyAdagrad", AdagradOp, K)                 \
  REGISTER_APPLY("KvResourceSparseApplyMomentum", MomentumOp, K)               \
  REGISTER_APPLY("KvResourceSparseApplyAdam", AdamOp, K)                       \
  REGISTER_APPLY("KvResourceSparseApplyFtrlV2", FtrlOp, K)                     \
  REGISTER_APPLY("KvResourceSparseApplyAdamW", AdamWOp, K)                     \
  REGISTER_APPLY("KvResourceSparseApplyAdamAsync", AdamAsyncOp, K)             \
  REGISTER_APPLY("KvResourceSparseApplyAdagradDecay", AdagradDecayOp, K)
REGISTER_ALL_APPLY(int64_t);
REGISTER_ALL_APPLY(int32_t);
#undef REGISTER_ALL_APPLY
#undef REGISTER_APPLY

}  // namespace
}  // namespace deeprec
