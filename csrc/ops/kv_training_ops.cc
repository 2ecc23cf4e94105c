// Op registrations for sparse optimizer updates of EmbeddingVariables.
// Each op sums the gradient rows of repeated ids, updates every distinct id
// once (as TensorFlow's sparse optimizers do after deduplicating) and records
// `global_step` as its version when it is >= 0. Slot inputs must be slots of
// `var`'s table.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deeprec {
namespace {

using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// Checks that the listed inputs are scalars.
tensorflow::Status Scalars(InferenceContext* c, std::initializer_list<int> in) {
  ShapeHandle unused;
  for (int i : in) TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
  return tensorflow::OkStatus();
}

}  // namespace

#define DEEPREC_KV_APPLY_ATTRS             \
  Attr("Tkeys: {int64, int32} = DT_INT64") \
      .Attr("T: {float} = DT_FLOAT")       \
      .Attr("use_locking: bool = false")   \
      .SetIsStateful()

REGISTER_OP("KvResourceSparseApplyGradientDescent")
    .Input("var: resource")
    .Input("alpha: T")
    .Input("grad: T")
    .Input("indices: Tkeys")
    .Input("global_step: int64")
    .DEEPREC_KV_APPLY_ATTRS
    .SetShapeFn([](InferenceContext* c) { return Scalars(c, {1, 4}); })
    .Doc("var[i] -= alpha * grad[i].");

REGISTER_OP("KvResourceSparseApplyAdagrad")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("lr: T")
    .Input("grad: T")
    .Input("indices: Tkeys")
    .Input("global_step: int64")
    .DEEPREC_KV_APPLY_ATTRS
    .SetShapeFn([](InferenceContext* c) { return Scalars(c, {2, 5}); })
    .Doc("accum += grad^2; var -= lr * grad / sqrt(accum).");

REGISTER_OP("KvResourceSparseApplyMomentum")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("lr: T")
    .Input("grad: T")
    .Input("indices: Tkeys")
    .Input("momentum: T")
    .Input("global_step: int64")
    .DEEPREC_KV_APPLY_ATTRS.Attr("use_nesterov: bool = false")
    .SetShapeFn([](InferenceContext* c) { return Scalars(c, {2, 5, 6}); })
    .Doc("accum = accum * momentum + grad; var -= lr * accum (or Nesterov).");

REGISTER_OP("KvResourceSparseApplyAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("beta1_power: T")
    .Input("beta2_power: T")
    .Input("lr: T")
    .Input("beta1: T")
    .Input("beta2: T")
    .Input("epsilon: T")
    .Input("grad: T")
    .Input("indices: Tkeys")
    .Input("global_step: int64")
    .DEEPREC_KV_APPLY_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      return Scalars(c, {3, 4, 5, 6, 7, 8, 11});
    })
    .Doc("Adam on the rows of `indices` with bias correction from the powers.");

REGISTER_OP("KvResourceSparseApplyFtrlV2")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("linear: resource")
    .Input("grad: T")
    .Input("indices: Tkeys")
    .Input("lr: T")
    .Input("l1: T")
    .Input("l2: T")
    .Input("l2_shrinkage: T")
    .Input("lr_power: T")
    .Input("global_step: int64")
    .DEEPREC_KV_APPLY_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      return Scalars(c, {5, 6, 7, 8, 9, 10});
    })
    .Doc("FTRL-Proximal with L2 shrinkage on the rows of `indices`.");

REGISTER_OP("KvResourceSparseApplyAdagradDecay")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("lr: T")
    .Input("accum_decay_step: int64")
    .Input("accum_decay_rate: T")
    .Input("accum_baseline: T")
    .Input("grad: T")
    .Input("indices: Tkeys")
    .Input("global_step: int64")
    .DEEPREC_KV_APPLY_ATTRS
    .SetShapeFn([](InferenceContext* c) { return Scalars(c, {2, 3, 4, 5, 8}); })
    .Doc(R"doc(
AdagradDecay on the rows of `indices`. A row's accumulator is first
multiplied by accum_decay_rate once for every decay period
(global_step / accum_decay_step) begun since the row's last update, and kept
at or above accum_baseline; then accum += grad^2 and
var -= lr * grad / sqrt(accum). global_step must be >= 0.
)doc");

REGISTER_OP("KvResourceSparseApplyAdamAsync")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("beta1_power: resource")
    .Input("beta2_power: resource")
    .Input("lr: T")
    .Input("beta1: T")
    .Input("beta2: T")
    .Input("epsilon: T")
    .Input("grad: T")
    .Input("indices: Tkeys")
    .Input("global_step: int64")
    .DEEPREC_KV_APPLY_ATTRS.Attr("apply_sparse_rmsprop: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      return Scalars(c, {5, 6, 7, 8, 11});
    })
    .Doc(R"doc(
AdamAsync on the rows of `indices`. beta1_power and beta2_power are this
variable's own scalar float variables: the apply reads them, multiplies them
by beta1 and beta2, and uses the values it read for the bias correction. With
apply_sparse_rmsprop the rows get RMSProp instead (v: mean square with decay
beta2, m: momentum beta1).
)doc");

REGISTER_OP("KvResourceSparseApplyAdamW")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("beta1_power: T")
    .Input("beta2_power: T")
    .Input("lr: T")
    .Input("beta1: T")
    .Input("beta2: T")
    .Input("epsilon: T")
    .Input("weight_decay: T")
    .Input("grad: T")
    .Input("indices: Tkeys")
    .Input("global_step: int64")
    .DEEPREC_KV_APPLY_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      return Scalars(c, {3, 4, 5, 6, 7, 8, 9, 12});
    })
    .Doc(R"doc(
Adam with decoupled weight decay on the rows of `indices`:
var -= weight_decay * var + lr_t * m / (sqrt(v) + epsilon).
)doc");

#undef DEEPREC_KV_APPLY_ATTRS

}  // namespace deeprec
