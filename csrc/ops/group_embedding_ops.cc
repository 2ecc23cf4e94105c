// Op registrations for the grouped embedding lookup (DeepRec's Group
// Embedding, localized mode): the lookups of N tables run as one pre-lookup
// op over all their ids, one gather per table partition (built in Python),
// one post-lookup op that combines every table's rows and one gradient op.
// Kernels: group_embedding_kernels.cc; the per-table logic is shared with
// the fused lookup (embedding_lookup_kernels.h).
#include <vector>

#include "csrc/ops/embedding_lookup_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deeprec {
namespace {

using lookup::CombinedRows;
using lookup::MergedColumns;
using lookup::VectorInput;
using tensorflow::Status;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// The outputs every pre-lookup op starts with, all vectors: the partitioned
// ids and their counts, then per table its positions, rows and weights.
void SetPlanOutputShapes(InferenceContext* c, int num_gathers, int n) {
  for (int i = 0; i < 2 * num_gathers + 3 * n; ++i) {
    c->set_output(i, c->Vector(c->UnknownDim()));
  }
}

// The first shard input of each table, from the num_partitions attr.
Status ShardOffsets(InferenceContext* c, std::vector<int>* offsets) {
  std::vector<int> parts;
  TF_RETURN_IF_ERROR(c->GetAttr("num_partitions", &parts));
  offsets->assign(1, 0);
  for (int p : parts) offsets->push_back(offsets->back() + p);
  return tensorflow::OkStatus();
}

}  // namespace

REGISTER_OP("GroupEmbeddingSparsePreLookUp")
    .Input("sp_values: Tids")
    .Input("sp_indices: N * int64")
    .Input("sp_dense_shape: N * int64")
    .Input("sp_weights: N * T")
    .Input("table_rows: int64")
    .Output("partitioned_ids: Tpartitioned")
    .Output("partitioned_counts: num_gathers * int64")
    .Output("positions: N * int64")
    .Output("rows: N * int64")
    .Output("weights: N * T")
    .Output("sources: N * int64")
    .Attr("N: int >= 1")
    .Attr("num_gathers: int >= 1")
    .Attr("Tids: list({int32, int64})")
    .Attr("Tpartitioned: list({int32, int64})")
    .Attr("num_partitions: list(int)")
    .Attr("partition_strategies: list({'div', 'mod', 'ev'})")
    .Attr("combiners: list({'sum', 'mean', 'sqrtn'})")
    .Attr("weighted: list(bool)")
    .Attr("is_sequence: bool = false")
    .Attr("T: {float, double} = DT_FLOAT")
    .SetShapeFn([](InferenceContext* c) {
      int n = 0, num_gathers = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      TF_RETURN_IF_ERROR(c->GetAttr("num_gathers", &num_gathers));
      for (int k = 0; k < n; ++k) {
        ShapeHandle values, indices, dense_shape;
        TF_RETURN_IF_ERROR(VectorInput(c, k, &values));
        TF_RETURN_IF_ERROR(c->WithRank(c->input(n + k), 2, &indices));
        TF_RETURN_IF_ERROR(VectorInput(c, 2 * n + k, &dense_shape));
        DimensionHandle unused;
        TF_RETURN_IF_ERROR(
            c->Merge(c->Dim(values, 0), c->Dim(indices, 0), &unused));
      }
      ShapeHandle table_rows;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(4 * n), 1, &table_rows));
      SetPlanOutputShapes(c, num_gathers, n);
      for (int k = 0; k < n; ++k) {
        c->set_output(2 * num_gathers + 3 * n + k, c->Vector(c->UnknownDim()));
      }
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Plans the sparse embedding lookups of N tables at once.

For table k, sp_values[k], sp_indices[k] and sp_dense_shape[k] are its rank-2
sparse ids and sp_weights[k] their weights (ignored, all 1, unless
weighted[k]); its ids are split over num_partitions[k] partitions by
partition_strategies[k], as FusedEmbeddingSparsePreLookUp splits them
(table_rows[k] rows for 'div' and 'mod'). Entries with ids < 0 are dropped,
and so are entries whose weight is not > 0 unless combiners[k] is 'sum', as
tf.nn.safe_embedding_lookup_sparse drops them. Rows left without entries stay
empty.

Outputs, over the tables' partitions in order (num_gathers of them): the
distinct ids to gather from each partition (in order of first appearance)
and how many entries read each. Per table, for every entry: its position in
the concatenation of that table's gathered rows, its output row (the batch
row, or with is_sequence the cell b * max_ids + t of sp_dense_shape), its
weight, and its index in sp_values[k] (sources). Entries are grouped by
output row, in input order within a row.
)doc");

REGISTER_OP("GroupEmbeddingPreLookUp")
    .Input("ids: Tids")
    .Input("table_rows: int64")
    .Output("partitioned_ids: Tpartitioned")
    .Output("partitioned_counts: num_gathers * int64")
    .Output("positions: N * int64")
    .Output("rows: N * int64")
    .Output("weights: N * T")
    .Output("ids_shapes: N * int64")
    .Attr("N: int >= 1")
    .Attr("num_gathers: int >= 1")
    .Attr("Tids: list({int32, int64})")
    .Attr("Tpartitioned: list({int32, int64})")
    .Attr("num_partitions: list(int)")
    .Attr("partition_strategies: list({'div', 'mod', 'ev'})")
    .Attr("T: {float, double} = DT_FLOAT")
    .SetShapeFn([](InferenceContext* c) {
      int n = 0, num_gathers = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      TF_RETURN_IF_ERROR(c->GetAttr("num_gathers", &num_gathers));
      ShapeHandle table_rows;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(n), 1, &table_rows));
      SetPlanOutputShapes(c, num_gathers, n);
      for (int k = 0; k < n; ++k) {
        const ShapeHandle ids = c->input(k);
        c->set_output(2 * num_gathers + 3 * n + k,
                      c->Vector(c->RankKnown(ids) ? c->MakeDim(c->Rank(ids))
                                                  : c->UnknownDim()));
      }
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Plans the dense embedding lookups of N tables at once, as
GroupEmbeddingSparsePreLookUp does for sparse ids: every element of ids[k]
(any shape) is one entry of weight 1 and its own output row. ids_shapes[k]
is the shape of ids[k], for GroupEmbeddingSparsePostLookUp with is_sequence.
)doc");

REGISTER_OP("GroupEmbeddingSparsePostLookUp")
    .Input("emb_shards: num_gathers * T")
    .Input("positions: N * int64")
    .Input("rows: N * int64")
    .Input("weights: N * T")
    .Input("sp_dense_shape: N * int64")
    .Output("embeddings: N * T")
    .Attr("N: int >= 1")
    .Attr("num_gathers: int >= 1")
    .Attr("num_partitions: list(int)")
    .Attr("combiners: list({'sum', 'mean', 'sqrtn'})")
    .Attr("max_norms: list(float)")
    .Attr("is_sequence: bool = false")
    .Attr("T: {float, double} = DT_FLOAT")
    .SetShapeFn([](InferenceContext* c) {
      int n = 0, num_gathers = 0;
      bool is_sequence = false;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      TF_RETURN_IF_ERROR(c->GetAttr("num_gathers", &num_gathers));
      TF_RETURN_IF_ERROR(c->GetAttr("is_sequence", &is_sequence));
      std::vector<int> offsets;
      TF_RETURN_IF_ERROR(ShardOffsets(c, &offsets));
      if (static_cast<int>(offsets.size()) != n + 1) {
        return tensorflow::errors::InvalidArgument(
            "num_partitions has ", offsets.size() - 1, " entries but N is ", n);
      }
      const int first = num_gathers;
      for (int k = 0; k < n; ++k) {
        DimensionHandle dim;
        TF_RETURN_IF_ERROR(
            MergedColumns(c, offsets[k], offsets[k + 1] - offsets[k], &dim));
        const int dense_shape = first + 3 * n + k;
        if (is_sequence) {
          ShapeHandle shape;
          TF_RETURN_IF_ERROR(c->MakeShapeFromShapeTensor(dense_shape, &shape));
          TF_RETURN_IF_ERROR(c->Concatenate(shape, c->Vector(dim), &shape));
          c->set_output(k, shape);
        } else {
          DimensionHandle rows;
          TF_RETURN_IF_ERROR(CombinedRows(c, dense_shape, &rows));
          c->set_output(k, c->Matrix(rows, dim));
        }
      }
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Clips and combines the gathered rows of N tables, one embedding tensor per
table.

Table k's gathered rows are emb_shards[o_k .. o_k + num_partitions[k]), its
entries positions[k], rows[k] and weights[k] (as GroupEmbeddingSparsePre
LookUp plans them), combined as FusedEmbeddingSparsePostLookUp combines them
with combiners[k] and max_norms[k] (<= 0: no clipping). Output k has shape
[prod(sp_dense_shape[k][:-1]), dim_k], or with is_sequence
sp_dense_shape[k] + [dim_k] (every entry its own row).
)doc");

REGISTER_OP("GroupEmbeddingSparsePostLookUpGrad")
    .Input("top_grads: N * T")
    .Input("emb_shards: num_gathers * T")
    .Input("positions: N * int64")
    .Input("rows: N * int64")
    .Input("weights: N * T")
    .Output("grad_shards: num_gathers * T")
    .Attr("N: int >= 1")
    .Attr("num_gathers: int >= 1")
    .Attr("num_partitions: list(int)")
    .Attr("combiners: list({'sum', 'mean', 'sqrtn'})")
    .Attr("max_norms: list(float)")
    .Attr("T: {float, double} = DT_FLOAT")
    .SetShapeFn([](InferenceContext* c) {
      int n = 0, num_gathers = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      TF_RETURN_IF_ERROR(c->GetAttr("num_gathers", &num_gathers));
      for (int i = 0; i < num_gathers; ++i) {
        ShapeHandle shard;
        TF_RETURN_IF_ERROR(c->WithRank(c->input(n + i), 2, &shard));
        c->set_output(i, shard);
      }
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of GroupEmbeddingSparsePostLookUp with respect to its emb_shards,
given top_grads, the gradients of its outputs: one tensor shaped like each
shard. A gathered row read by several entries receives the sum of their
contributions; clipped rows get the gradient through the clipping.
)doc");

REGISTER_OP("GroupEmbeddingSparsePostLookUpWeightsGrad")
    .Input("top_grads: N * T")
    .Input("emb_shards: num_gathers * T")
    .Input("positions: N * int64")
    .Input("rows: N * int64")
    .Input("weights: N * T")
    .Input("embeddings: N * T")
    .Output("grad_weights: N * T")
    .Attr("N: int >= 1")
    .Attr("num_gathers: int >= 1")
    .Attr("num_partitions: list(int)")
    .Attr("combiners: list({'sum', 'mean', 'sqrtn'})")
    .Attr("max_norms: list(float)")
    .Attr("T: {float, double} = DT_FLOAT")
    .SetShapeFn([](InferenceContext* c) {
      int n = 0, num_gathers = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      TF_RETURN_IF_ERROR(c->GetAttr("num_gathers", &num_gathers));
      for (int k = 0; k < n; ++k) {
        ShapeHandle weights;
        TF_RETURN_IF_ERROR(
            VectorInput(c, n + num_gathers + 2 * n + k, &weights));
        c->set_output(k, weights);
      }
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of GroupEmbeddingSparsePostLookUp with respect to its weights,
given top_grads (the gradients of its outputs) and embeddings (the outputs
themselves). Returns one value per entry of each table.
)doc");

}  // namespace deeprec
