// Kernels of DeepRec's optimizers on dense variables (ref and resource), for
// dense and sparse applies. The per-row rules are the engine's
// (csrc/embedding/optimizer_math.h), shared with the EmbeddingVariable
// kernels, so both kinds of variable train identically.
#define EIGEN_USE_THREADS

#include <array>
#include <cmath>
#include <numeric>
#include <optional>
#include <vector>

#include "csrc/embedding/optimizer_math.h"
#include "csrc/ops/optimizer_util.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/kernels/training_op_helpers.h"

namespace deeprec {
namespace {

using CPUDevice = Eigen::ThreadPoolDevice;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::VariableInputLockHolder;
namespace errors = tensorflow::errors;

// Per-call inputs of one apply; kept out of the kernel's members because one
// kernel object may run concurrently in several steps.
template <typename T>
struct Params {
  std::array<T, 6> f{};
  int64_t step = 0;
  int64_t period = 1;
  Tensor decay_power;  // AdagradDecay's per-row decay periods (int64)
  std::optional<VariableInputLockHolder> decay_power_lock;
};

// Inputs 0..kSlots are the variable and its slots (all of the variable's
// shape), then hyperparameters, `grad` and, for a sparse apply, `indices`.
// A dense apply updates every row of the variable; a sparse one the rows of
// `indices`, in order.
template <typename T, typename Tindex, bool kSparse, int kSlots>
class DenseApplyOp : public OpKernel {
 public:
  DenseApplyOp(OpKernelConstruction* ctx, int grad_input)
      : OpKernel(ctx), grad_input_(grad_input) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_locking", &use_locking_));
  }

  void Compute(OpKernelContext* ctx) override {
    std::vector<int> inputs(kSlots + 1);
    std::iota(inputs.begin(), inputs.end(), 0);
    auto locks = tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, use_locking_, kSparse, inputs);
    std::array<Tensor, kSlots + 1> vars;
    for (int i = 0; i <= kSlots; ++i) {
      OP_REQUIRES_OK(ctx, tensorflow::GetInputTensorFromVariable<CPUDevice, T>(
                              ctx, i, use_locking_, kSparse, &vars[i]));
      OP_REQUIRES(
          ctx, vars[i].IsInitialized(),
          errors::FailedPrecondition(type_string(), ": ", def().input(i),
                                     " is not initialized"));
      OP_REQUIRES(ctx, vars[i].shape() == vars[0].shape(),
                  errors::InvalidArgument(
                      type_string(), ": ", def().input(i), " has shape ",
                      vars[i].shape().DebugString(), " but var has shape ",
                      vars[0].shape().DebugString()));
    }
    const Tensor& grad = ctx->input(grad_input_);
    const Tensor* indices = kSparse ? &ctx->input(grad_input_ + 1) : nullptr;
    int64_t rows = 0;
    OP_REQUIRES_OK(ctx, CheckRows(vars[0], grad, indices, &rows));
    Params<T> params;
    OP_REQUIRES_OK(ctx, ReadParams(ctx, vars[0], &params));

    const int64_t width =
        vars[0].dims() == 0 ? 1 : vars[0].NumElements() / vars[0].dim_size(0);
    std::array<T*, kSlots + 1> base;
    for (int i = 0; i <= kSlots; ++i)
      base[i] = vars[i].template flat<T>().data();
    const T* g = grad.flat<T>().data();
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t row =
          kSparse ? static_cast<int64_t>(indices->template flat<Tindex>()(i))
                  : i;
      std::array<T*, kSlots + 1> at;
      for (int s = 0; s <= kSlots; ++s) at[s] = base[s] + row * width;
      ApplyRow(at, g + i * width, width, row, params);
    }
    if (tensorflow::IsRefType(ctx->input_dtype(0))) {
      ctx->forward_ref_input_to_ref_output(0, 0);
    }
  }

 protected:
  static T Scalar(OpKernelContext* ctx, int input) {
    return ctx->input(input).scalar<T>()();
  }
  virtual tensorflow::Status ReadParams(OpKernelContext* ctx, const Tensor& var,
                                        Params<T>* p) const = 0;
  virtual void ApplyRow(const std::array<T*, kSlots + 1>& at, const T* grad,
                        int64_t width, int64_t row, Params<T>& p) const = 0;

  bool use_locking_ = false;

 private:
  // Checks grad (and indices) against var; *rows = the rows to update.
  tensorflow::Status CheckRows(const Tensor& var, const Tensor& grad,
                               const Tensor* indices, int64_t* rows) const {
    if (!kSparse) {
      if (grad.shape() != var.shape()) {
        return errors::InvalidArgument(
            type_string(), ": grad has shape ", grad.shape().DebugString(),
            " but var has shape ", var.shape().DebugString());
      }
      *rows = var.dims() == 0 ? 1 : var.dim_size(0);
      return tensorflow::OkStatus();
    }
    if (var.dims() < 1 || indices->dims() != 1) {
      return errors::InvalidArgument(
          type_string(), ": needs a var of rank >= 1 and 1-D indices; got var ",
          var.shape().DebugString(), " and indices ",
          indices->shape().DebugString());
    }
    TensorShape expected = var.shape();
    expected.set_dim(0, indices->dim_size(0));
    if (grad.shape() != expected) {
      return errors::InvalidArgument(
          type_string(), ": grad has shape ", grad.shape().DebugString(),
          " but ", indices->dim_size(0), " indices into var of shape ",
          var.shape().DebugString(), " need ", expected.DebugString());
    }
    const auto ids = indices->flat<Tindex>();
    for (int64_t i = 0; i < ids.size(); ++i) {
      if (ids(i) < 0 || ids(i) >= var.dim_size(0)) {
        return errors::InvalidArgument(type_string(), ": indices[", i,
                                       "] = ", ids(i), " is not in [0, ",
                                       var.dim_size(0), ")");
      }
    }
    *rows = ids.size();
    return tensorflow::OkStatus();
  }

  const int grad_input_;
};

// Inputs: var, accum, accum_decay_power, lr, accum_decay_step,
// accum_decay_rate, accum_baseline, global_step, grad[, indices].
template <typename T, typename Tindex, bool kSparse>
class AdagradDecayOp : public DenseApplyOp<T, Tindex, kSparse, 1> {
 public:
  explicit AdagradDecayOp(OpKernelConstruction* ctx)
      : DenseApplyOp<T, Tindex, kSparse, 1>(ctx, 8) {}

 protected:
  tensorflow::Status ReadParams(OpKernelContext* ctx, const Tensor& var,
                                Params<T>* p) const override {
    p->f[0] = this->Scalar(ctx, 3);
    p->period = ctx->input(4).scalar<int64_t>()();
    p->f[1] = this->Scalar(ctx, 5);
    p->f[2] = this->Scalar(ctx, 6);
    p->step = ctx->input(7).scalar<int64_t>()();
    TF_RETURN_IF_ERROR(ValidateDecay(this->type_string(), p->step, p->period,
                                     p->f[1], p->f[2]));
    p->decay_power_lock.emplace(
        tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, int64_t>(
            ctx, this->use_locking_, kSparse, {2}));
    TF_RETURN_IF_ERROR(
        tensorflow::GetInputTensorFromVariable<CPUDevice, int64_t>(
            ctx, 2, this->use_locking_, kSparse, &p->decay_power));
    const TensorShape expected =
        var.dims() == 0 ? TensorShape({}) : TensorShape({var.dim_size(0)});
    if (!p->decay_power.IsInitialized() || p->decay_power.shape() != expected) {
      return errors::InvalidArgument(
          this->type_string(),
          ": accum_decay_power must be an initialized int64 variable of shape ",
          expected.DebugString(), " (one entry per row of var)");
    }
    return tensorflow::OkStatus();
  }

  void ApplyRow(const std::array<T*, 2>& at, const T* grad, int64_t width,
                int64_t row, Params<T>& p) const override {
    int64_t& last = p.decay_power.template flat<int64_t>()(row);
    const int64_t now = embedding::DecayPeriod(p.step, p.period);
    T decay = T(1);
    if (now > last) {
      decay = static_cast<T>(std::pow(static_cast<double>(p.f[1]),
                                      static_cast<double>(now - last)));
      last = now;
    }
    embedding::ApplyAdagradDecay(at[0], at[1], grad, width, p.f[0], decay,
                                 p.f[2]);
  }
};

// Inputs: var, m, v, beta1_power, beta2_power (variables), lr, beta1,
// beta2, epsilon, grad[, indices].
template <typename T, typename Tindex, bool kSparse>
class AdamAsyncOp : public DenseApplyOp<T, Tindex, kSparse, 2> {
 public:
  explicit AdamAsyncOp(OpKernelConstruction* ctx)
      : DenseApplyOp<T, Tindex, kSparse, 2>(ctx, 9) {
    if (kSparse) {
      OP_REQUIRES_OK(ctx, ctx->GetAttr("apply_sparse_rmsprop", &rmsprop_));
    }
  }

 protected:
  tensorflow::Status ReadParams(OpKernelContext* ctx, const Tensor&,
                                Params<T>* p) const override {
    const T beta1 = this->Scalar(ctx, 6);
    const T beta2 = this->Scalar(ctx, 7);
    T beta1_power = 0, beta2_power = 0;
    TF_RETURN_IF_ERROR(AdvancePower<T>(ctx, 3, beta1, &beta1_power));
    TF_RETURN_IF_ERROR(AdvancePower<T>(ctx, 4, beta2, &beta2_power));
    if (!(beta1_power < T(1)) || !(beta2_power < T(1))) {
      return errors::InvalidArgument(
          this->type_string(),
          ": beta1_power and beta2_power must be < 1, got ", beta1_power,
          " and ", beta2_power);
    }
    const T lr = this->Scalar(ctx, 5);
    p->f[0] = lr * std::sqrt(T(1) - beta2_power) / (T(1) - beta1_power);
    p->f[1] = beta1;
    p->f[2] = beta2;
    p->f[3] = this->Scalar(ctx, 8);
    p->f[4] = lr;
    return tensorflow::OkStatus();
  }

  void ApplyRow(const std::array<T*, 3>& at, const T* grad, int64_t width,
                int64_t, Params<T>& p) const override {
    if (rmsprop_) {
      embedding::ApplyRmsPropAsync(at[0], at[1], at[2], grad, width, p.f[4],
                                   p.f[1], p.f[2], p.f[3]);
    } else {
      embedding::ApplyAdam(at[0], at[1], at[2], grad, width, p.f[0], p.f[1],
                           p.f[2], p.f[3]);
    }
  }

 private:
  bool rmsprop_ = false;
};

// Inputs: var, m, v, beta1_power, beta2_power (values), lr, beta1, beta2,
// epsilon, weight_decay, grad, indices.
template <typename T, typename Tindex>
class SparseAdamWOp : public DenseApplyOp<T, Tindex, true, 2> {
 public:
  explicit SparseAdamWOp(OpKernelConstruction* ctx)
      : DenseApplyOp<T, Tindex, true, 2>(ctx, 10) {}

 protected:
  tensorflow::Status ReadParams(OpKernelContext* ctx, const Tensor&,
                                Params<T>* p) const override {
    const T beta1_power = this->Scalar(ctx, 3);
    const T beta2_power = this->Scalar(ctx, 4);
    const T weight_decay = this->Scalar(ctx, 9);
    if (!(beta1_power < T(1)) || !(beta2_power < T(1)) ||
        !(weight_decay >= T(0))) {
      return errors::InvalidArgument(
          this->type_string(),
          ": need beta1_power < 1, beta2_power < 1 and weight_decay >= 0; got ",
          beta1_power, ", ", beta2_power, " and ", weight_decay);
    }
    p->f[0] = this->Scalar(ctx, 5) * std::sqrt(T(1) - beta2_power) /
              (T(1) - beta1_power);
    p->f[1] = this->Scalar(ctx, 6);
    p->f[2] = this->Scalar(ctx, 7);
    p->f[3] = this->Scalar(ctx, 8);
    p->f[4] = weight_decay;
    return tensorflow::OkStatus();
  }

  void ApplyRow(const std::array<T*, 3>& at, const T* grad, int64_t width,
                int64_t, Params<T>& p) const override {
    embedding::ApplyAdamW(at[0], at[1], at[2], grad, width, p.f[0], p.f[1],
                          p.f[2], p.f[3], p.f[4]);
  }
};

template <typename T, typename Tindex>
using SparseAdagradDecayOp = AdagradDecayOp<T, Tindex, true>;
template <typename T, typename Tindex>
using SparseAdamAsyncOp = AdamAsyncOp<T, Tindex, true>;

#define REGISTER_DENSE(NAME, KERNEL, T)                                 \
  REGISTER_KERNEL_BUILDER(                                              \
      Name(NAME).Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      KERNEL<T, int64_t, false>);                                       \
  REGISTER_KERNEL_BUILDER(Name("Resource" NAME)                         \
                              .Device(tensorflow::DEVICE_CPU)           \
                              .TypeConstraint<T>("T"),                  \
                          KERNEL<T, int64_t, false>);
#define REGISTER_SPARSE(NAME, KERNEL, T, Tindex)                   \
  REGISTER_KERNEL_BUILDER(Name(NAME)                               \
                              .Device(tensorflow::DEVICE_CPU)      \
                              .TypeConstraint<T>("T")              \
                              .TypeConstraint<Tindex>("Tindices"), \
                          KERNEL<T, Tindex>);                      \
  REGISTER_KERNEL_BUILDER(Name("Resource" NAME)                    \
                              .Device(tensorflow::DEVICE_CPU)      \
                              .TypeConstraint<T>("T")              \
                              .TypeConstraint<Tindex>("Tindices"), \
                          KERNEL<T, Tindex>);
#define REGISTER_ALL(T)                                                        \
  REGISTER_DENSE("ApplyAdagradDecay", AdagradDecayOp, T)                       \
  REGISTER_DENSE("ApplyAdamAsync", AdamAsyncOp, T)                             \
  REGISTER_SPARSE("SparseApplyAdagradDecay", SparseAdagradDecayOp, T, int32_t) \
  REGISTER_SPARSE("SparseApplyAdagradDecay", SparseAdagradDecayOp, T, int64_t) \
  REGISTER_SPARSE("SparseApplyAdamAsync", SparseAdamAsyncOp, T, int32_t)       \
  REGISTER_SPARSE("SparseApplyAdamAsync", SparseAdamAsyncOp, T, int64_t)       \
  REGISTER_SPARSE("SparseApplyAdamW", SparseAdamWOp, T, int32_t)               \
  REGISTER_SPARSE("SparseApplyAdamW", SparseAdamWOp, T, int64_t)
REGISTER_ALL(float);
REGISTER_ALL(double);
#undef REGISTER_ALL
#undef REGISTER_SPARSE
#undef REGISTER_DENSE

}  // namespace
}  // namespace deeprec
