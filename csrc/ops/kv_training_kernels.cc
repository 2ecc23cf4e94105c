// Kernels for sparse optimizer updates of EmbeddingVariables. The update
// rules are the engine's (csrc/embedding/optimizer_math.h); this file checks
// inputs, resolves slot columns and shards the rows over the thread pool.
#include <array>
#include <memory>
#include <string>

#include "csrc/embedding/embedding_table.h"
#include "csrc/embedding/optimizer_math.h"
#include "csrc/ops/embedding_var.h"
#include "csrc/ops/kernel_util.h"
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
    Params params{};
    OP_REQUIRES_OK(ctx, ReadHyperParameters(ctx, &params));
    const int64_t step = ctx->input(step_input_).scalar<int64_t>()();
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
  using Params = std::array<float, 5>;
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
    (*p)[0] = this->Scalar(ctx, 1);
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns&, const Params& p,
                const float* grad, int64_t dim) const override {
    embedding::ApplyGradientDescent(r.column(0), grad, dim, p[0]);
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
    (*p)[0] = this->Scalar(ctx, 2);
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns& c, const Params& p,
                const float* grad, int64_t dim) const override {
    embedding::ApplyAdagrad(r.column(0), r.column(c[1]), grad, dim, p[0]);
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
    (*p)[0] = this->Scalar(ctx, 2);
    (*p)[1] = this->Scalar(ctx, 5);
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns& c, const Params& p,
                const float* grad, int64_t dim) const override {
    embedding::ApplyMomentum(r.column(0), r.column(c[1]), grad, dim, p[0], p[1],
                             use_nesterov_);
  }

 private:
  bool use_nesterov_ = false;
};

template <typename K>
class AdamOp : public KvApplyOp<K, 2> {
 public:
  explicit AdamOp(OpKernelConstruction* ctx)
      : KvApplyOp<K, 2>(ctx, 9, 10, 11) {}

 protected:
  using typename KvApplyOp<K, 2>::Params;
  using typename KvApplyOp<K, 2>::Columns;

  tensorflow::Status ReadHyperParameters(OpKernelContext* ctx,
                                         Params* p) const override {
    const float beta1_power = this->Scalar(ctx, 3);
    const float beta2_power = this->Scalar(ctx, 4);
    if (!(beta1_power < 1.0f) || !(beta2_power < 1.0f)) {
      return errors::InvalidArgument(
          "KvResourceSparseApplyAdam: beta1_power and beta2_power must be "
          "< 1, got ",
          beta1_power, " and ", beta2_power);
    }
    // Bias-corrected step, as TensorFlow's Adam computes it.
    (*p)[0] = this->Scalar(ctx, 5) * std::sqrt(1.0f - beta2_power) /
              (1.0f - beta1_power);
    (*p)[1] = this->Scalar(ctx, 6);
    (*p)[2] = this->Scalar(ctx, 7);
    (*p)[3] = this->Scalar(ctx, 8);
    return tensorflow::OkStatus();
  }
  void ApplyRow(const RecordView& r, const Columns& c, const Params& p,
                const float* grad, int64_t dim) const override {
    embedding::ApplyAdam(r.column(0), r.column(c[1]), r.column(c[2]), grad, dim,
                         p[0], p[1], p[2], p[3]);
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
    for (int i = 0; i < 5; ++i) (*p)[i] = this->Scalar(ctx, 5 + i);
    const float lr = (*p)[0], l1 = (*p)[1], l2 = (*p)[2], shrinkage = (*p)[3],
                lr_power = (*p)[4];
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
                         p[0], p[1], p[2], p[3], p[4]);
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
  REGISTER_APPLY("KvResourceSparseApplyFtrlV2", FtrlOp, K)
REGISTER_ALL_APPLY(int64_t);
REGISTER_ALL_APPLY(int32_t);
#undef REGISTER_ALL_APPLY
#undef REGISTER_APPLY

}  // namespace
}  // namespace deeprec
