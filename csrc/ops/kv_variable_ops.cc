// Op registrations for EmbeddingVariables: handle, initialization, lookup,
// statistics, and checkpoint export/import. Kernels live in *_kernels.cc.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace deeprec {
namespace {

using tensorflow::Status;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// The embedding dim recorded on the handle by KvVarHandleOp, or unknown.
DimensionHandle HandleDim(InferenceContext* c, int input) {
  const auto* data = c->input_handle_shapes_and_types(input);
  if (data == nullptr || data->empty()) return c->UnknownDim();
  ShapeHandle shape = (*data)[0].shape;
  if (!c->RankKnown(shape) || c->Rank(shape) < 1) return c->UnknownDim();
  return c->Dim(shape, -1);
}

Status ScalarResourceInput(InferenceContext* c, int input) {
  ShapeHandle unused;
  return c->WithRank(c->input(input), 0, &unused);
}

}  // namespace

REGISTER_OP("KvVarHandleOp")
    .Output("resource: resource")
    .Attr("container: string = ''")
    .Attr("shared_name: string = ''")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .Attr("dtype: {float} = DT_FLOAT")
    .Attr("shape: shape")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Scalar());
      tensorflow::PartialTensorShape shape;
      TF_RETURN_IF_ERROR(c->GetAttr("shape", &shape));
      tensorflow::DataType dtype;
      TF_RETURN_IF_ERROR(c->GetAttr("dtype", &dtype));
      ShapeHandle s;
      TF_RETURN_IF_ERROR(c->MakeShapeFromPartialTensorShape(shape, &s));
      c->set_output_handle_shapes_and_types(
          0,
          std::vector<tensorflow::shape_inference::ShapeAndType>{{s, dtype}});
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Creates a handle to an EmbeddingVariable: a hash table from ids of type
Tkeys to embeddings of `shape` = [embedding_dim]. The table itself is created
by InitializeKvVariableOp.
)doc");

REGISTER_OP("InitializeKvVariableOp")
    .Input("resource: resource")
    .Input("primary: resource")
    .Input("default_value: dtype")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .Attr("dtype: {float} = DT_FLOAT")
    .Attr("if_uninitialized: bool = false")
    .Attr("filter_freq: int >= 0 = 0")
    .Attr("bloom_counters: int >= 0 = 0")
    .Attr("bloom_hashes: int >= 0 = 0")
    .Attr("bloom_counter_bits: int = 64")
    .Attr("default_value_no_permission: float = 0.0")
    .Attr("steps_to_live: int = -1")
    .Attr("l2_weight_threshold: float = -1.0")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(ScalarResourceInput(c, 0));
      TF_RETURN_IF_ERROR(ScalarResourceInput(c, 1));
      ShapeHandle value;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &value));
      DimensionHandle unused;
      return c->Merge(c->Dim(value, 1), HandleDim(c, 0), &unused);
    })
    .Doc(R"doc(
Initializes an EmbeddingVariable. When `resource` and `primary` name the same
variable, a new empty table is created whose new keys take row
floormod(key, default_value_dim) of `default_value` [default_value_dim, dim].
Otherwise `resource` is an optimizer slot: it becomes a new column of the
primary's table with `default_value` as that column's default rows. With
`if_uninitialized`, an already initialized variable is left unchanged (used by
restores, which may run instead of the initializers). The remaining attrs set
the primary table's admission filter (filter_freq > 0; a counting Bloom filter
when bloom_counters > 0) and eviction policy (steps_to_live >= 0,
l2_weight_threshold >= 0).
)doc");

REGISTER_OP("KvVarIsInitializedOp")
    .Input("resource: resource")
    .Output("is_initialized: bool")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("Whether the EmbeddingVariable behind `resource` is initialized.");

REGISTER_OP("KvVariableShape")
    .Input("resource: resource")
    .Output("shape: int64")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(2));
      return tensorflow::OkStatus();
    })
    .Doc("[number of keys, embedding dim] of an EmbeddingVariable.");

REGISTER_OP("KvResourceGather")
    .Input("resource: resource")
    .Input("indices: Tkeys")
    .Output("output: dtype")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .Attr("dtype: {float} = DT_FLOAT")
    .Attr("is_inference: bool = false")
    // Training lookups insert keys and count frequencies: never fold or merge.
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle out;
      TF_RETURN_IF_ERROR(
          c->Concatenate(c->input(1), c->Vector(HandleDim(c, 0)), &out));
      c->set_output(0, out);
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Gathers the embeddings of `indices`; output shape is indices.shape + [dim].
In training (`is_inference` false) missing keys are inserted with their
default rows and every occurrence counts toward the key's frequency. In
inference nothing is inserted and missing keys read their default rows.
)doc");

REGISTER_OP("KvResourceGatherWithCounts")
    .Input("resource: resource")
    .Input("indices: Tkeys")
    .Input("counts: int64")
    .Output("output: dtype")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .Attr("dtype: {float} = DT_FLOAT")
    .Attr("is_inference: bool = false")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle out;
      TF_RETURN_IF_ERROR(c->Merge(c->input(1), c->input(2), &out));
      TF_RETURN_IF_ERROR(c->Concatenate(out, c->Vector(HandleDim(c, 0)), &out));
      c->set_output(0, out);
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
KvResourceGather (training) of deduplicated ids: indices[i] stands for
counts[i] >= 1 occurrences of one id. Each id's frequency grows by its count,
and admission filters judge it as that many occurrences, so the table ends
up as after KvResourceGather of the ids with their repetitions, while every
record is read once. A lookup of an optimizer slot reads without inserting
or counting, as KvResourceGather does; so does every lookup with
`is_inference` (serving graphs).
)doc");

REGISTER_OP("KvResourceLookupFrequency")
    .Input("resource: resource")
    .Input("indices: Tkeys")
    .Output("frequency: int64")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return tensorflow::OkStatus();
    })
    .Doc("Lookup counts of `indices` (0 for absent keys).");

REGISTER_OP("KvResourceLookupVersion")
    .Input("resource: resource")
    .Input("indices: Tkeys")
    .Output("version: int64")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return tensorflow::OkStatus();
    })
    .Doc("Global step of the last update of `indices` (-1 if never updated).");

REGISTER_OP("KvResourceExport")
    .Input("resource: resource")
    .Input("slots: N * resource")
    .Input("global_step: int64")
    .Output("keys: Tkeys")
    .Output("values: dtype")
    .Output("freqs: int64")
    .Output("versions: int64")
    .Output("partition_offset: int32")
    .Output("slot_values: N * dtype")
    .Output("keys_filtered: Tkeys")
    .Output("freqs_filtered: int64")
    .Output("versions_filtered: int64")
    .Output("partition_filter_offset: int32")
    .Attr("N: int >= 0")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .Attr("dtype: {float} = DT_FLOAT")
    .Attr("evict: bool = false")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int n = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("N", &n));
      ShapeHandle matrix = c->Matrix(c->UnknownDim(), HandleDim(c, 0));
      for (int i : {0, 2, 3, 5 + n, 6 + n, 7 + n}) {
        c->set_output(i, c->Vector(c->UnknownDim()));
      }
      c->set_output(1, matrix);
      c->set_output(4, c->Vector(1001));
      c->set_output(8 + n, c->Vector(1001));
      for (int i = 0; i < n; ++i) c->set_output(5 + i, matrix);
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
Exports one consistent snapshot of an EmbeddingVariable and the given slots
(which must share its table), rows grouped by floormod(key, 1000);
partition_offset[b] is the first row of group b and partition_offset[1000]
the row count. The *_filtered outputs list the ids counted but not yet
admitted by an exact admission filter, grouped the same way. With `evict`,
the table's eviction policy runs first, judged at `global_step`.
)doc");

REGISTER_OP("KvResourceEvict")
    .Input("resource: resource")
    .Input("global_step: int64")
    .Output("evicted: int64")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .SetIsStateful()
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc(R"doc(
Runs the EmbeddingVariable's eviction policy at `global_step` (< 0 skips the
global-step rule) and returns how many ids it removed with their slots.
)doc");

REGISTER_OP("KvVariableStats")
    .Input("resource: resource")
    .Output("stats: int64")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(4));
      return tensorflow::OkStatus();
    })
    .Doc(R"doc(
[total ids, admitted ids, ids counted but not admitted, ids evicted by the
latest eviction] of an EmbeddingVariable.
)doc");

REGISTER_OP("KvResourceImport")
    .Input("resource: resource")
    .Input("keys: Tkeys")
    .Input("values: dtype")
    .Input("freqs: int64")
    .Input("versions: int64")
    .Input("keys_filtered: Tkeys")
    .Input("freqs_filtered: int64")
    .Input("versions_filtered: int64")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .Attr("dtype: {float} = DT_FLOAT")
    .Attr("drop_absent: bool = false")
    .Attr("tensor_name: string = ''")
    .SetIsStateful()
    .Doc(R"doc(
Writes `values` [n, dim] for `keys` into the variable's column, inserting
missing keys. `freqs` and `versions` are either empty (left unchanged) or have
n entries. With `drop_absent` keys not in `keys` are removed and the ids not
yet admitted are replaced by `keys_filtered` (with their counts, possibly
empty), each re-judged against the variable's admission filter. `tensor_name`
names the checkpoint tensor in error messages.
)doc");

REGISTER_OP("KvResourceImportFromCheckpoint")
    .Input("prefix: string")
    .Input("resource: resource")
    .Attr("Tkeys: {int64, int32} = DT_INT64")
    .Attr("dtype: {float} = DT_FLOAT")
    .Attr("root: string")
    .Attr("suffix: string = ''")
    .Attr("partition_id: int >= 0 = 0")
    .Attr("partition_num: int >= 1 = 1")
    .Attr("drop_absent: bool = false")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle unused;
      return c->WithRank(c->input(0), 0, &unused);
    })
    .Doc(R"doc(
Restores an EmbeddingVariable column from the checkpoint at `prefix`, whatever
the number of shards it was saved with: reads `<root><suffix>-*` or every
`<root>/part_<i><suffix>-*` tensor group and keeps the keys k with
floormod(k, 1000) % partition_num == partition_id.
)doc");

}  // namespace deeprec
