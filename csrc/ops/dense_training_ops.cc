// Op registrations for DeepRec's optimizers on dense variables: AdagradDecay
// and AdamAsync (dense and sparse applies) and AdamW's sparse apply. Each
// comes as a ref-variable op (`var: Ref(T)`, output `out`) and a resource
// op (`Resource` prefix, no output). Sparse applies update only the rows of
// `indices`, one after another in order (so a repeated index is applied
// twice; the Python optimizers sum repeated indices first).
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deeprec {
namespace {

using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// Checks that the listed inputs are scalars; a ref op's output has the
// shape of its variable (input 0).
tensorflow::Status ScalarInputs(InferenceContext* c,
                                std::initializer_list<int> in) {
  ShapeHandle unused;
  for (int i : in) TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
  if (c->num_outputs() > 0) c->set_output(0, c->input(0));
  return tensorflow::OkStatus();
}

}  // namespace

// VAR is "Ref(T)" or "resource"; INT_VAR the same for an int64 variable.
#define DEEPREC_ADAGRAD_DECAY_INPUTS(VAR, INT_VAR) \
  Input("var: " VAR)                               \
      .Input("accum: " VAR)                        \
      .Input("accum_decay_power: " INT_VAR)        \
      .Input("lr: T")                              \
      .Input("accum_decay_step: int64")            \
      .Input("accum_decay_rate: T")                \
      .Input("accum_baseline: T")                  \
      .Input("global_step: int64")                 \
      .Input("grad: T")

#define DEEPREC_ADAM_ASYNC_INPUTS(VAR) \
  Input("var: " VAR)                   \
      .Input("m: " VAR)                \
      .Input("v: " VAR)                \
      .Input("beta1_power: " VAR)      \
      .Input("beta2_power: " VAR)      \
      .Input("lr: T")                  \
      .Input("beta1: T")               \
      .Input("beta2: T")               \
      .Input("epsilon: T")             \
      .Input("grad: T")

#define DEEPREC_ADAM_W_INPUTS(VAR) \
  Input("var: " VAR)               \
      .Input("m: " VAR)            \
      .Input("v: " VAR)            \
      .Input("beta1_power: T")     \
      .Input("beta2_power: T")     \
      .Input("lr: T")              \
      .Input("beta1: T")           \
      .Input("beta2: T")           \
      .Input("epsilon: T")         \
      .Input("weight_decay: T")    \
      .Input("grad: T")

#define DEEPREC_DENSE_ATTRS \
  Attr("T: {float, double}").Attr("use_locking: bool = false")

#define DEEPREC_SPARSE_ATTRS \
  Input("indices: Tindices") \
      .DEEPREC_DENSE_ATTRS.Attr("Tindices: {int32, int64}")

constexpr char kAdagradDecayDoc[] = R"doc(
AdagradDecay: on each updated row, the accumulator is first multiplied by
accum_decay_rate once per decay period (global_step / accum_decay_step)
begun since the row's accum_decay_power, and kept at or above
accum_baseline; then accum += grad^2 and var -= lr * grad / sqrt(accum).
accum_decay_power (int64, one entry per row of var, or a scalar for a
scalar var) records each row's last decay period.
)doc";

constexpr char kAdamAsyncDoc[] = R"doc(
AdamAsync: beta1_power and beta2_power are this variable's own scalars,
read and advanced (times beta1, beta2) by the apply itself.
m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2,
var -= lr sqrt(1 - beta2_power) / (1 - beta1_power) * m / (sqrt(v) + eps).
With apply_sparse_rmsprop (sparse applies only) the rows get RMSProp:
v as above, m = beta1 m + lr g / sqrt(v + eps), var -= m.
)doc";

constexpr char kAdamWDoc[] = R"doc(
Lazy Adam with decoupled weight decay on the rows of `indices`:
var -= weight_decay * var + lr_t * m / (sqrt(v) + epsilon), with
lr_t = lr sqrt(1 - beta2_power) / (1 - beta1_power).
)doc";

REGISTER_OP("ApplyAdagradDecay")
    .DEEPREC_ADAGRAD_DECAY_INPUTS("Ref(T)", "Ref(int64)")
    .Output("out: Ref(T)")
    .DEEPREC_DENSE_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      return ScalarInputs(c, {3, 4, 5, 6, 7});
    })
    .Doc(kAdagradDecayDoc);

REGISTER_OP("ResourceApplyAdagradDecay")
    .DEEPREC_ADAGRAD_DECAY_INPUTS("resource", "resource")
    .DEEPREC_DENSE_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      return ScalarInputs(c, {3, 4, 5, 6, 7});
    })
    .Doc(kAdagradDecayDoc);

REGISTER_OP("SparseApplyAdagradDecay")
    .DEEPREC_ADAGRAD_DECAY_INPUTS("Ref(T)", "Ref(int64)")
    .DEEPREC_SPARSE_ATTRS.Output("out: Ref(T)")
    .SetShapeFn([](InferenceContext* c) {
      return ScalarInputs(c, {3, 4, 5, 6, 7});
    })
    .Doc(kAdagradDecayDoc);

REGISTER_OP("ResourceSparseApplyAdagradDecay")
    .DEEPREC_ADAGRAD_DECAY_INPUTS("resource", "resource")
    .DEEPREC_SPARSE_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      return ScalarInputs(c, {3, 4, 5, 6, 7});
    })
    .Doc(kAdagradDecayDoc);

REGISTER_OP("ApplyAdamAsync")
    .DEEPREC_ADAM_ASYNC_INPUTS("Ref(T)")
    .Output("out: Ref(T)")
    .DEEPREC_DENSE_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      return ScalarInputs(c, {5, 6, 7, 8});
    })
    .Doc(kAdamAsyncDoc);

REGISTER_OP("ResourceApplyAdamAsync")
    .DEEPREC_ADAM_ASYNC_INPUTS("resource")
    .DEEPREC_DENSE_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      return ScalarInputs(c, {5, 6, 7, 8});
    })
    .Doc(kAdamAsyncDoc);

REGISTER_OP("SparseApplyAdamAsync")
    .DEEPREC_ADAM_ASYNC_INPUTS("Ref(T)")
    .DEEPREC_SPARSE_ATTRS.Attr("apply_sparse_rmsprop: bool = false")
    .Output("out: Ref(T)")
    .SetShapeFn([](InferenceContext* c) {
      return ScalarInputs(c, {5, 6, 7, 8});
    })
    .Doc(kAdamAsyncDoc);

REGISTER_OP("ResourceSparseApplyAdamAsync")
    .DEEPREC_ADAM_ASYNC_INPUTS("resource")
    .DEEPREC_SPARSE_ATTRS.Attr("apply_sparse_rmsprop: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      return ScalarInputs(c, {5, 6, 7, 8});
    })
    .Doc(kAdamAsyncDoc);

REGISTER_OP("SparseApplyAdamW")
    .DEEPREC_ADAM_W_INPUTS("Ref(T)")
    .DEEPREC_SPARSE_ATTRS.Output("out: Ref(T)")
    .SetShapeFn([](InferenceContext* c) {
      return ScalarInputs(c, {3, 4, 5, 6, 7, 8, 9});
    })
    .Doc(kAdamWDoc);

REGISTER_OP("ResourceSparseApplyAdamW")
    .DEEPREC_ADAM_W_INPUTS("resource")
    .DEEPREC_SPARSE_ATTRS
    .SetShapeFn([](InferenceContext* c) {
      return ScalarInputs(c, {3, 4, 5, 6, 7, 8, 9});
    })
    .Doc(kAdamWDoc);

#undef DEEPREC_SPARSE_ATTRS
#undef DEEPREC_DENSE_ATTRS
#undef DEEPREC_ADAM_W_INPUTS
#undef DEEPREC_ADAM_ASYNC_INPUTS
#undef DEEPREC_ADAGRAD_DECAY_INPUTS

}  // namespace deeprec
