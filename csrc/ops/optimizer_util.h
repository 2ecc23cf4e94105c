// Helpers shared by the optimizer kernels of dense variables and
// EmbeddingVariables: per-variable Adam powers and AdagradDecay's checks.
#ifndef DEEPREC_OPS_OPTIMIZER_UTIL_H_
#define DEEPREC_OPS_OPTIMIZER_UTIL_H_

#include <cstdint>
#include <string>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/kernels/training_op_helpers.h"

namespace deeprec {

// Reads the scalar variable (ref or resource) at `input` into *power and
// multiplies the variable by `beta`, both under the variable's lock, so that
// concurrent applies each use a distinct power.
template <typename T>
tensorflow::Status AdvancePower(tensorflow::OpKernelContext* ctx, int input,
                                T beta, T* power) {
  using CPUDevice = Eigen::ThreadPoolDevice;
  const std::string& op = ctx->op_kernel().type_string();
  auto advance = [&](tensorflow::Tensor* t) -> tensorflow::Status {
    if (!t->IsInitialized() ||
        t->dtype() != tensorflow::DataTypeToEnum<T>::v() ||
        t->NumElements() != 1) {
      return tensorflow::errors::InvalidArgument(
          op, ": input ", input, " (", ctx->op_kernel().def().input(input),
          ") must be an initialized scalar variable of type ",
          tensorflow::DataTypeString(tensorflow::DataTypeToEnum<T>::v()));
    }
    *power = t->flat<T>()(0);
    t->flat<T>()(0) = *power * beta;
    return tensorflow::OkStatus();
  };
  if (ctx->input_dtype(input) == tensorflow::DT_RESOURCE) {
    tensorflow::core::RefCountPtr<tensorflow::Var> var;
    TF_RETURN_IF_ERROR(tensorflow::LookupResource(
        ctx, tensorflow::HandleFromInput(ctx, input), &var));
    tensorflow::mutex_lock lock(*var->mu());
    if (!var->is_initialized) {
      return tensorflow::errors::FailedPrecondition(
          op, ": variable '", tensorflow::HandleFromInput(ctx, input).name(),
          "' is not initialized");
    }
    TF_RETURN_IF_ERROR(tensorflow::PrepareToUpdateVariable<CPUDevice, T>(
        ctx, var->tensor(), var->copy_on_read_mode.load()));
    return advance(var->tensor());
  }
  tensorflow::mutex_lock lock(*ctx->input_ref_mutex(input));
  tensorflow::Tensor t = ctx->mutable_input(input, /*lock_held=*/true);
  return advance(&t);
}

// Checks AdagradDecay's per-call inputs.
inline tensorflow::Status ValidateDecay(const std::string& op, int64_t step,
                                        int64_t period, double rate,
                                        double baseline) {
  if (step < 0 || period <= 0 || !(rate > 0.0 && rate <= 1.0) ||
      !(baseline > 0.0)) {
    return tensorflow::errors::InvalidArgument(
        op,
        ": need global_step >= 0, accum_decay_step > 0, 0 < "
        "accum_decay_rate <= 1 and accum_baseline > 0; got global_step=",
        step, " accum_decay_step=", period, " accum_decay_rate=", rate,
        " accum_baseline=", baseline);
  }
  return tensorflow::OkStatus();
}

}  // namespace deeprec

#endif  // DEEPREC_OPS_OPTIMIZER_UTIL_H_
