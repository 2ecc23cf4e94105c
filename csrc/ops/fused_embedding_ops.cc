// Op registrations for the fused sparse embedding lookup (DeepRec's
// "Embedding Subgraph Fusion"): a pre-lookup op that prunes, fills and
// partitions the sparse ids, the gathers (ordinary variable or
// EmbeddingVariable lookups, built in Python), and a post-lookup op that
// clips and combines the gathered rows. Kernels: fused_embedding_kernels.cc.
#include "csrc/ops/embedding_lookup_shape_fns.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deeprec {
namespace {

using tensorflow::Status;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

using lookup::CombinedRows;
using lookup::MergedColumns;
using lookup::VectorInput;

}  // namespace

REGISTER_OP("FusedEmbeddingSparsePreLookUp")
    .Input("sp_values: Tids")
    .Input("sp_indices: int64")
    .Input("sp_dense_shape: int64")
    .Input("sp_weights: T")
    .Input("table_rows: int64")
    .Output("partitioned_ids: num_partitions * Tids")
    .Output("positions: int64")
    .Output("rows: int64")
    .Output("weights: T")
    .Output("sources: int64")
    .Output("partitioned_counts: num_partitions * int64")
    .Attr("num_partitions: int >= 1")
    .Attr("partition_strategy: {'div', 'mod', 'ev'}")
    .Attr("sparse_rank: int = -1")
    .Attr("prune_invalid_ids: bool = false")
    .Attr("prune_invalid_weights: bool = false")
    .Attr("fill_empty_rows: bool = false")
    .Attr("default_id: int = 0")
    .Attr("unique: bool = false")
    .Attr("Tids: {int32, int64} = DT_INT64")
    .Attr("T: {float, double} = DT_FLOAT")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle values, indices, dense_shape, weights, table_rows;
      TF_RETURN_IF_ERROR(VectorInput(c, 0, &values));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &indices));
      TF_RETURN_IF_ERROR(VectorInput(c, 2, &dense_shape));
      TF_RETURN_IF_ERROR(VectorInput(c, 3, &weights));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(4), 0, &table_rows));
      DimensionHandle nnz;
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(values, 0), c->Dim(indices, 0), &nnz));
      TF_RETURN_IF_ERROR(c->Merge(nnz, c->Dim(weights, 0), &nnz));
      DimensionHandle rank;
      TF_RETURN_IF_ERROR(
          c->Merge(c->Dim(indices, 1), c->Dim(dense_shape, 0), &rank));
      int num_partitions = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("num_partitions", &num_partitions));
      for (int i = 0; i < num_partitions; ++i) {
        c->set_output(i, c->Vector(c->UnknownDim()));
      }
      // The entry outputs, then partitioned_counts (one per partition).
      for (int i = num_partitions; i < 2 * num_partitions + 4; ++i) {
        c->set_output(i, c->Vector(c->UnknownDim()));
      }
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Prunes, fills and partitions sparse ids for a fused embedding lookup.

Outputs one id list to gather per partition and, for every looked-up entry,
the gathered row it reads, the output row it adds to and its weight.

The output row of entry i is the flat index of sp_indices[i, :-1] within
sp_dense_shape[:-1] (the last dimension is combined). Entries are dropped
when prune_invalid_ids and sp_values[i] < 0, or when prune_invalid_weights
and not sp_weights[i] > 0. With fill_empty_rows, every output row left
without entries gets one entry (default_id, weight 1).

partition_strategy routes each id to a partition: 'div' and 'mod' as
tf.nn.embedding_lookup does over a table of table_rows rows split in
num_partitions parts (partitioned_ids then hold row numbers within each
part, and every id must lie in [0, table_rows)); 'ev' by
floormod(floormod(id, 1000), num_partitions) with the raw ids kept, as
partitioned EmbeddingVariables route keys (table_rows is ignored).

partitioned_ids[p] lists the ids to gather from partition p, in order of
first appearance; with `unique` each id appears once, otherwise once per
entry. partitioned_counts[p][j] is the number of entries that read
partitioned_ids[p][j] (always 1 without `unique`). positions[i] indexes the
concatenation of the rows gathered for partitioned_ids[0], ...,
partitioned_ids[num_partitions - 1]. Entries come out grouped by output
row, in input order within a row; sources[i] is the index in sp_values of
entry i, or -1 for an entry that fills an empty row.

sparse_rank >= 0 requires sp_indices to have that many columns; -1 accepts
any rank >= 2.
)doc");

REGISTER_OP("FusedEmbeddingSparsePostLookUp")
    .Input("emb_shards: num_partitions * T")
    .Input("positions: int64")
    .Input("rows: int64")
    .Input("weights: T")
    .Input("sp_dense_shape: int64")
    .Output("embeddings: T")
    .Attr("num_partitions: int >= 1")
    .Attr("combiner: {'sum', 'mean', 'sqrtn'} = 'mean'")
    .Attr("max_norm: float = -1.0")
    .Attr("T: {float, double} = DT_FLOAT")
    .SetShapeFn([](InferenceContext* c) {
      int n = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("num_partitions", &n));
      DimensionHandle dim, rows, entries;
      TF_RETURN_IF_ERROR(MergedColumns(c, 0, n, &dim));
      ShapeHandle positions, row_ids, weights;
      TF_RETURN_IF_ERROR(VectorInput(c, n, &positions));
      TF_RETURN_IF_ERROR(VectorInput(c, n + 1, &row_ids));
      TF_RETURN_IF_ERROR(VectorInput(c, n + 2, &weights));
      TF_RETURN_IF_ERROR(
          c->Merge(c->Dim(positions, 0), c->Dim(row_ids, 0), &entries));
      TF_RETURN_IF_ERROR(c->Merge(entries, c->Dim(weights, 0), &entries));
      TF_RETURN_IF_ERROR(CombinedRows(c, n + 3, &rows));
      c->set_output(0, c->Matrix(rows, dim));
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Clips and combines gathered embedding rows into one embedding per row.

embeddings[r] = sum over entries i with rows[i] == r of
weights[i] * clip(gathered[positions[i]]) / norm[r], where gathered is the
concatenation of emb_shards, clip scales a row down to an L2 norm of
max_norm when it is longer (max_norm <= 0: no clipping) and norm[r] is 1
('sum'), the sum of the row's weights ('mean') or the square root of the sum
of their squares ('sqrtn'); a zero norm gives a zero row. The output has
prod(sp_dense_shape[:-1]) rows; rows without entries are zero.
)doc");

REGISTER_OP("FusedEmbeddingSparsePostLookUpGrad")
    .Input("top_grad: T")
    .Input("emb_shards: num_partitions * T")
    .Input("positions: int64")
    .Input("rows: int64")
    .Input("weights: T")
    .Output("grad_shards: num_partitions * T")
    .Attr("num_partitions: int >= 1")
    .Attr("combiner: {'sum', 'mean', 'sqrtn'} = 'mean'")
    .Attr("max_norm: float = -1.0")
    .Attr("T: {float, double} = DT_FLOAT")
    .SetShapeFn([](InferenceContext* c) {
      int n = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("num_partitions", &n));
      ShapeHandle top_grad;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &top_grad));
      DimensionHandle dim;
      TF_RETURN_IF_ERROR(MergedColumns(c, 1, n, &dim));
      TF_RETURN_IF_ERROR(c->Merge(dim, c->Dim(top_grad, 1), &dim));
      for (int i = 0; i < n; ++i) {
        ShapeHandle shard;
        TF_RETURN_IF_ERROR(c->ReplaceDim(c->input(1 + i), 1, dim, &shard));
        c->set_output(i, shard);
      }
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of FusedEmbeddingSparsePostLookUp with respect to its emb_shards.

Given top_grad, the gradient of that op's output, returns one tensor shaped
like each shard. A gathered row read by several entries receives the sum of their
contributions; clipped rows get the gradient through the clipping.
)doc");

REGISTER_OP("FusedEmbeddingSparsePostLookUpWeightsGrad")
    .Input("top_grad: T")
    .Input("emb_shards: num_partitions * T")
    .Input("positions: int64")
    .Input("rows: int64")
    .Input("weights: T")
    .Input("embeddings: T")
    .Output("grad_weights: T")
    .Attr("num_partitions: int >= 1")
    .Attr("combiner: {'sum', 'mean', 'sqrtn'} = 'mean'")
    .Attr("max_norm: float = -1.0")
    .Attr("T: {float, double} = DT_FLOAT")
    .SetShapeFn([](InferenceContext* c) {
      int n = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("num_partitions", &n));
      ShapeHandle weights;
      TF_RETURN_IF_ERROR(VectorInput(c, n + 3, &weights));
      c->set_output(0, weights);
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gradient of FusedEmbeddingSparsePostLookUp with respect to its weights.

Given top_grad, the gradient of that op's output, and embeddings, that
output, returns one value per entry.
)doc");

}  // namespace deeprec
