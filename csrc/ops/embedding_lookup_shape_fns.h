// Shape-function helpers shared by the fused (fused_embedding_ops.cc) and
// grouped (group_embedding_ops.cc) embedding lookup ops.
#ifndef DEEPREC_OPS_EMBEDDING_LOOKUP_SHAPE_FNS_H_
#define DEEPREC_OPS_EMBEDDING_LOOKUP_SHAPE_FNS_H_

#include <cstdint>

#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"

namespace deeprec {
namespace lookup {

// Output rows of a lookup whose sparse dense shape is input
// `dense_shape_input`: prod(dense_shape[:-1]) when the last dimension is
// combined, prod(dense_shape) otherwise, when the dense shape is a constant;
// unknown otherwise.
inline tensorflow::Status CombinedRows(
    tensorflow::shape_inference::InferenceContext* c, int dense_shape_input,
    tensorflow::shape_inference::DimensionHandle* rows,
    bool combine_last = true) {
  tensorflow::shape_inference::ShapeHandle dense_shape;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(dense_shape_input), 1, &dense_shape));
  *rows = c->UnknownDim();
  const tensorflow::Tensor* value = c->input_tensor(dense_shape_input);
  const int64_t min_rank = combine_last ? 2 : 0;
  if (value == nullptr || value->NumElements() < min_rank) {
    return tensorflow::OkStatus();
  }
  int64_t product = 1;
  const auto shape = value->flat<int64_t>();
  const int64_t combined = combine_last ? shape.size() - 1 : shape.size();
  for (int64_t i = 0; i < combined; ++i) {
    if (shape(i) < 0) return tensorflow::OkStatus();  // The kernel reports it.
    product *= shape(i);
  }
  *rows = c->MakeDim(product);
  return tensorflow::OkStatus();
}

// All of `inputs` [first, first + n) are matrices with the same columns.
inline tensorflow::Status MergedColumns(
    tensorflow::shape_inference::InferenceContext* c, int first, int n,
    tensorflow::shape_inference::DimensionHandle* dim) {
  *dim = c->UnknownDim();
  for (int i = first; i < first + n; ++i) {
    tensorflow::shape_inference::ShapeHandle shard;
    TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 2, &shard));
    TF_RETURN_IF_ERROR(c->Merge(*dim, c->Dim(shard, 1), dim));
  }
  return tensorflow::OkStatus();
}

inline tensorflow::Status VectorInput(
    tensorflow::shape_inference::InferenceContext* c, int input,
    tensorflow::shape_inference::ShapeHandle* out) {
  return c->WithRank(c->input(input), 1, out);
}

}  // namespace lookup
}  // namespace deeprec

#endif  // DEEPREC_OPS_EMBEDDING_LOOKUP_SHAPE_FNS_H_
