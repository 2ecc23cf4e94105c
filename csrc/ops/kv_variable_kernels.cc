// Kernels for EmbeddingVariable handles, initialization, lookups, statistics
// and checkpoint export/import from tensors.
#include <memory>
#include <string>
#include <vector>

#include "csrc/embedding/embedding_table.h"
#include "csrc/ops/embedding_var.h"
#include "csrc/ops/kernel_util.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/tensor.h"

namespace deeprec {
namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpInputList;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::OpOutputList;
using tensorflow::ResourceHandle;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::core::RefCountPtr;
namespace errors = tensorflow::errors;

template <typename K>
using TablePtr = std::shared_ptr<embedding::EmbeddingTable<K>>;

// An op whose input 0 is an EmbeddingVariable (or slot) handle: Compute
// resolves it and its table, then calls ComputeWithTable.
template <typename K>
class KvTableOpKernel : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) final {
    RefCountPtr<EmbeddingVar<K>> var;
    TablePtr<K> table;
    OP_REQUIRES_OK(ctx, LookupEmbeddingVar<K>(ctx, 0, &var, &table));
    ComputeWithTable(ctx, var.get(), table);
  }

 protected:
  virtual void ComputeWithTable(OpKernelContext* ctx, EmbeddingVar<K>* var,
                                const TablePtr<K>& table) = 0;
};

template <typename K>
class InitializeKvVariableOp : public OpKernel {
 public:
  explicit InitializeKvVariableOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("if_uninitialized", &if_uninitialized_));
    embedding::AdmissionPolicy& admission = policy_.admission;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("filter_freq", &admission.filter_freq));
    OP_REQUIRES_OK(ctx,
                   ctx->GetAttr("bloom_counters", &admission.bloom_counters));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("bloom_hashes", &admission.bloom_hashes));
    OP_REQUIRES_OK(
        ctx, ctx->GetAttr("bloom_counter_bits", &admission.bloom_counter_bits));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("default_value_no_permission",
                                     &admission.no_permission_value));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("steps_to_live", &policy_.steps_to_live));
    OP_REQUIRES_OK(
        ctx, ctx->GetAttr("l2_weight_threshold", &policy_.l2_weight_threshold));
    if (admission.bloom() && admission.enabled()) {
      const int bits = admission.bloom_counter_bits;
      OP_REQUIRES(
          ctx,
          admission.bloom_hashes > 0 &&
              (bits == 8 || bits == 16 || bits == 32 || bits == 64) &&
              (bits == 64 || admission.filter_freq < (int64_t{1} << bits)),
          errors::InvalidArgument(
              "InitializeKvVariableOp: a counting Bloom filter needs "
              "bloom_hashes > 0, bloom_counter_bits in {8, 16, 32, 64} and "
              "filter_freq below 2^bloom_counter_bits; got bloom_hashes=",
              admission.bloom_hashes, ", bloom_counter_bits=", bits,
              ", filter_freq=", admission.filter_freq));
    }
  }

  void Compute(OpKernelContext* ctx) override {
    const ResourceHandle& self = HandleFromInput(ctx, 0);
    const ResourceHandle& primary = HandleFromInput(ctx, 1);
    const Tensor& defaults = ctx->input(2);
    OP_REQUIRES(
        ctx,
        defaults.dims() == 2 && defaults.dim_size(0) > 0 &&
            defaults.dim_size(1) > 0,
        errors::InvalidArgument(
            "InitializeKvVariableOp: default_value of EmbeddingVariable '",
            self.name(),
            "' must be a non-empty [default_value_dim, dim] "
            "matrix, got shape ",
            defaults.shape().DebugString()));
    const int64_t rows = defaults.dim_size(0);
    const int64_t dim = defaults.dim_size(1);
    const float* data = defaults.flat<float>().data();
    std::vector<float> values(data, data + rows * dim);

    EmbeddingVar<K>* var = nullptr;
    OP_REQUIRES_OK(ctx, tensorflow::LookupOrCreateResource<EmbeddingVar<K>>(
                            ctx, self, &var, [](EmbeddingVar<K>** v) {
                              *v = new EmbeddingVar<K>();
                              return tensorflow::OkStatus();
                            }));
    tensorflow::core::ScopedUnref unref(var);

    if (self.name() == primary.name() &&
        self.container() == primary.container()) {
      var->InitPrimary(
          [&] {
            return std::make_shared<embedding::EmbeddingTable<K>>(
                dim, rows, std::move(values), policy_);
          },
          if_uninitialized_);
      return;
    }
    RefCountPtr<EmbeddingVar<K>> primary_var;
    TablePtr<K> table;
    OP_REQUIRES_OK(ctx, LookupEmbeddingVar<K>(ctx, 1, &primary_var, &table));
    OP_REQUIRES(ctx, table->dim() == dim && table->default_value_dim() == rows,
                errors::InvalidArgument(
                    "InitializeKvVariableOp: slot '", self.name(),
                    "' has default_value shape [", rows, ", ", dim,
                    "] but its primary '", primary.name(), "' has [",
                    table->default_value_dim(), ", ", table->dim(), "]"));
    // A slot re-initialized on the same table keeps its column.
    var->AttachSlot(table, std::move(values));
  }

 private:
  bool if_uninitialized_ = false;
  embedding::TablePolicy policy_;
};

template <typename K>
class KvVarIsInitializedOp : public OpKernel {
 public:
  using OpKernel::OpKernel;

  void Compute(OpKernelContext* ctx) override {
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    RefCountPtr<EmbeddingVar<K>> var;
    const bool found = LookupResource(ctx, HandleFromInput(ctx, 0), &var).ok();
    out->scalar<bool>()() = found && var->table() != nullptr;
  }
};

template <typename K>
class KvVariableShapeOp : public KvTableOpKernel<K> {
 public:
  using KvTableOpKernel<K>::KvTableOpKernel;

  void ComputeWithTable(OpKernelContext* ctx, EmbeddingVar<K>* var,
                        const TablePtr<K>& table) override {
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({2}), &out));
    out->vec<int64_t>()(0) = table->size();
    out->vec<int64_t>()(1) = table->dim();
  }
};

// KvResourceGather, and with kCounted KvResourceGatherWithCounts, whose
// input 2 gives the occurrences each (distinct) id stands for.
template <typename K, bool kCounted>
class KvResourceGatherOp : public KvTableOpKernel<K> {
 public:
  explicit KvResourceGatherOp(OpKernelConstruction* ctx)
      : KvTableOpKernel<K>(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("is_inference", &is_inference_));
  }

  void ComputeWithTable(OpKernelContext* ctx, EmbeddingVar<K>* var,
                        const TablePtr<K>& table) override {
    const Tensor& indices = ctx->input(1);
    const int64_t n = indices.NumElements();
    const int64_t* counts = nullptr;
    if (kCounted) OP_REQUIRES_OK(ctx, ReadCounts(ctx, indices, &counts));
    const int64_t dim = table->dim();
    TensorShape shape = indices.shape();
    shape.AddDim(dim);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &out));
    const K* keys = indices.flat<K>().data();
    float* dst = out->flat<float>().data();
    const auto run = PoolRunner(ctx, ShardTaskCost(n, dim));
    // Only the primary's training lookups create keys: slots are read, never
    // grown, through a lookup, and serving graphs never insert.
    if (is_inference_ || var->column() != 0) {
      table->Find(keys, n, var->column(), dst, run);
    } else if (kCounted) {
      table->LookupOrInsertCounted(keys, counts, n, dst, run);
    } else {
      table->LookupOrInsert(keys, n, dst, true, run);
    }
  }

 private:
  tensorflow::Status ReadCounts(OpKernelContext* ctx, const Tensor& indices,
                                const int64_t** counts) const {
    const Tensor& counts_t = ctx->input(2);
    if (counts_t.shape() != indices.shape()) {
      return errors::InvalidArgument(this->type_string(), ": counts has shape ",
                                     counts_t.shape().DebugString(),
                                     " but indices has shape ",
                                     indices.shape().DebugString());
    }
    *counts = counts_t.flat<int64_t>().data();
    for (int64_t i = 0; i < counts_t.NumElements(); ++i) {
      if ((*counts)[i] < 1) {
        return errors::InvalidArgument(this->type_string(), ": counts[", i,
                                       "] = ", (*counts)[i], " is not >= 1");
      }
    }
    return tensorflow::OkStatus();
  }

  bool is_inference_ = false;
};

template <typename K, bool kVersion>
class KvResourceLookupHeaderOp : public KvTableOpKernel<K> {
 public:
  using KvTableOpKernel<K>::KvTableOpKernel;

  void ComputeWithTable(OpKernelContext* ctx, EmbeddingVar<K>* var,
                        const TablePtr<K>& table) override {
    const Tensor& indices = ctx->input(1);
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, indices.shape(), &out));
    const K* keys = indices.flat<K>().data();
    int64_t* dst = out->flat<int64_t>().data();
    if (kVersion) {
      table->GetVersion(keys, indices.NumElements(), dst);
    } else {
      table->GetFrequency(keys, indices.NumElements(), dst);
    }
  }
};

template <typename K>
class KvResourceExportOp : public KvTableOpKernel<K> {
 public:
  explicit KvResourceExportOp(OpKernelConstruction* ctx)
      : KvTableOpKernel<K>(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("evict", &evict_));
  }

  void ComputeWithTable(OpKernelContext* ctx, EmbeddingVar<K>* var,
                        const TablePtr<K>& table) override {
    OpInputList slots;
    OP_REQUIRES_OK(ctx, ctx->input_list("slots", &slots));
    std::vector<int> columns = {var->column()};
    std::vector<RefCountPtr<EmbeddingVar<K>>> slot_vars(slots.size());
    for (int i = 0; i < slots.size(); ++i) {
      TablePtr<K> slot_table;
      OP_REQUIRES_OK(
          ctx, LookupEmbeddingVar<K>(ctx, 1 + i, &slot_vars[i], &slot_table));
      OP_REQUIRES(
          ctx, slot_table == table,
          errors::InvalidArgument("KvResourceExport: slot '",
                                  HandleFromInput(ctx, 1 + i).name(),
                                  "' is not a slot of EmbeddingVariable '",
                                  HandleFromInput(ctx, 0).name(), "'"));
      columns.push_back(slot_vars[i]->column());
    }
    const int64_t dim = table->dim();
    if (evict_) {
      table->Evict(ctx->input(1 + slots.size()).scalar<int64_t>()());
    }
    std::vector<int64_t> offsets(embedding::kNumBuckets + 1);
    std::vector<int64_t> filter_offsets(embedding::kNumBuckets + 1);
    // The row counts are known only under the table's locks, so outputs are
    // allocated from inside Export; a failed allocation aborts it by throwing.
    tensorflow::Status status;
    auto output = [&](const char* name, const TensorShape& shape) -> Tensor* {
      Tensor* t = nullptr;
      status = ctx->allocate_output(name, shape, &t);
      if (!status.ok()) throw std::runtime_error(status.ToString());
      return t;
    };
    OpOutputList slot_outputs;
    OP_REQUIRES_OK(ctx, ctx->output_list("slot_values", &slot_outputs));
    auto alloc = [&](int64_t n, int64_t n_filtered) {
      typename embedding::EmbeddingTable<K>::ExportBuffers buffers;
      buffers.keys = output("keys", {n})->template flat<K>().data();
      buffers.columns.push_back(
          output("values", {n, dim})->template flat<float>().data());
      buffers.freqs = output("freqs", {n})->template flat<int64_t>().data();
      buffers.versions =
          output("versions", {n})->template flat<int64_t>().data();
      for (int i = 0; i < slots.size(); ++i) {
        Tensor* t = nullptr;
        status = slot_outputs.allocate(i, TensorShape({n, dim}), &t);
        if (!status.ok()) throw std::runtime_error(status.ToString());
        buffers.columns.push_back(t->template flat<float>().data());
      }
      buffers.keys_filtered =
          output("keys_filtered", {n_filtered})->template flat<K>().data();
      buffers.freqs_filtered = output("freqs_filtered", {n_filtered})
                                   ->template flat<int64_t>()
                                   .data();
      buffers.versions_filtered = output("versions_filtered", {n_filtered})
                                      ->template flat<int64_t>()
                                      .data();
      return buffers;
    };
    try {
      table->Export(columns, alloc, offsets.data(), filter_offsets.data());
    } catch (const std::exception& e) {
      OP_REQUIRES_OK(ctx, status);
      OP_REQUIRES_OK(ctx, EngineError(ctx, e));
    }
    OP_REQUIRES_OK(ctx, WriteOffsets(ctx, "partition_offset", offsets));
    OP_REQUIRES_OK(
        ctx, WriteOffsets(ctx, "partition_filter_offset", filter_offsets));
  }

 private:
  static tensorflow::Status WriteOffsets(OpKernelContext* ctx, const char* name,
                                         const std::vector<int64_t>& offsets) {
    Tensor* out = nullptr;
    TF_RETURN_IF_ERROR(ctx->allocate_output(
        name, TensorShape({static_cast<int64_t>(offsets.size())}), &out));
    auto vec = out->vec<int32_t>();
    for (size_t b = 0; b < offsets.size(); ++b) {
      vec(b) = static_cast<int32_t>(offsets[b]);
    }
    return tensorflow::OkStatus();
  }

  bool evict_ = false;
};

template <typename K>
class KvResourceEvictOp : public KvTableOpKernel<K> {
 public:
  using KvTableOpKernel<K>::KvTableOpKernel;

  void ComputeWithTable(OpKernelContext* ctx, EmbeddingVar<K>* var,
                        const TablePtr<K>& table) override {
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({}), &out));
    out->scalar<int64_t>()() = table->Evict(ctx->input(1).scalar<int64_t>()());
  }
};

template <typename K>
class KvVariableStatsOp : public KvTableOpKernel<K> {
 public:
  using KvTableOpKernel<K>::KvTableOpKernel;

  void ComputeWithTable(OpKernelContext* ctx, EmbeddingVar<K>* var,
                        const TablePtr<K>& table) override {
    const auto stats = table->GetStats();
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({4}), &out));
    auto vec = out->vec<int64_t>();
    vec(0) = stats.admitted + stats.filtered;
    vec(1) = stats.admitted;
    vec(2) = stats.filtered;
    vec(3) = stats.last_evicted;
  }
};

template <typename K>
class KvResourceImportOp : public KvTableOpKernel<K> {
 public:
  explicit KvResourceImportOp(OpKernelConstruction* ctx)
      : KvTableOpKernel<K>(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("drop_absent", &drop_absent_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("tensor_name", &tensor_name_));
  }

  void ComputeWithTable(OpKernelContext* ctx, EmbeddingVar<K>* var,
                        const TablePtr<K>& table) override {
    const Tensor& keys = ctx->input(1);
    const Tensor& values = ctx->input(2);
    const Tensor& freqs = ctx->input(3);
    const Tensor& versions = ctx->input(4);
    const std::string& name = HandleFromInput(ctx, 0).name();
    const int64_t n = keys.NumElements();
    OP_REQUIRES(
        ctx, values.dims() == 2 && values.dim_size(1) == table->dim(),
        errors::InvalidArgument(
            "KvResourceImport: checkpoint tensor '", tensor_name_,
            "' has shape ", values.shape().DebugString(), " (embedding dim ",
            values.dims() == 2 ? values.dim_size(1) : -1,
            ") but EmbeddingVariable '", name, "' has embedding dim ",
            table->dim()));
    OP_REQUIRES(ctx, keys.dims() == 1 && values.dim_size(0) == n,
                errors::InvalidArgument("KvResourceImport: '", tensor_name_,
                                        "' has ", values.dim_size(0),
                                        " rows but its keys tensor has shape ",
                                        keys.shape().DebugString()));
    for (const Tensor* t : {&freqs, &versions}) {
      OP_REQUIRES(
          ctx, t->NumElements() == 0 || t->NumElements() == n,
          errors::InvalidArgument("KvResourceImport: '", tensor_name_,
                                  "' freqs/versions must be empty or have ", n,
                                  " entries, got ", t->NumElements()));
    }
    const Tensor& keys_filtered = ctx->input(5);
    const Tensor& freqs_filtered = ctx->input(6);
    const Tensor& versions_filtered = ctx->input(7);
    typename embedding::EmbeddingTable<K>::FilteredRows filtered;
    filtered.keys = keys_filtered.flat<K>().data();
    filtered.n = keys_filtered.NumElements();
    for (const Tensor* t : {&freqs_filtered, &versions_filtered}) {
      OP_REQUIRES(ctx, t->NumElements() == 0 || t->NumElements() == filtered.n,
                  errors::InvalidArgument(
                      "KvResourceImport: '", tensor_name_,
                      "' filtered freqs/versions must be empty or have ",
                      filtered.n, " entries, got ", t->NumElements()));
    }
    if (freqs_filtered.NumElements()) {
      filtered.freqs = freqs_filtered.flat<int64_t>().data();
    }
    if (versions_filtered.NumElements()) {
      filtered.versions = versions_filtered.flat<int64_t>().data();
    }
    try {
      table->Import(
          keys.flat<K>().data(), n, var->column(), values.flat<float>().data(),
          freqs.NumElements() ? freqs.flat<int64_t>().data() : nullptr,
          versions.NumElements() ? versions.flat<int64_t>().data() : nullptr,
          drop_absent_, filtered);
    } catch (const std::exception& e) {
      ctx->SetStatus(EngineError(ctx, e));
    }
  }

 private:
  bool drop_absent_ = false;
  std::string tensor_name_;
};

#define REGISTER_KV_KERNELS(K)                                                \
  REGISTER_KERNEL_BUILDER(                                                    \
      Name("KvVarHandleOp").Device(DEVICE_CPU).TypeConstraint<K>("Tkeys"),    \
      tensorflow::ResourceHandleOp<EmbeddingVar<K>>);                         \
  REGISTER_KERNEL_BUILDER(Name("InitializeKvVariableOp")                      \
                              .Device(DEVICE_CPU)                             \
                              .TypeConstraint<K>("Tkeys"),                    \
                          InitializeKvVariableOp<K>);                         \
  REGISTER_KERNEL_BUILDER(Name("KvVarIsInitializedOp")                        \
                              .Device(DEVICE_CPU)                             \
                              .TypeConstraint<K>("Tkeys"),                    \
                          KvVarIsInitializedOp<K>);                           \
  REGISTER_KERNEL_BUILDER(                                                    \
      Name("KvVariableShape").Device(DEVICE_CPU).TypeConstraint<K>("Tkeys"),  \
      KvVariableShapeOp<K>);                                                  \
  REGISTER_KERNEL_BUILDER(                                                    \
      Name("KvResourceGather").Device(DEVICE_CPU).TypeConstraint<K>("Tkeys"), \
      KvResourceGatherOp<K, false>);                                          \
  REGISTER_KERNEL_BUILDER(Name("KvResourceGatherWithCounts")                  \
                              .Device(DEVICE_CPU)                             \
                              .TypeConstraint<K>("Tkeys"),                    \
                          KvResourceGatherOp<K, true>);                       \
  REGISTER_KERNEL_BUILDER(Name("KvResourceLookupFrequency")                   \
                              .Device(DEVICE_CPU)                             \
                              .TypeConstraint<K>("Tkeys"),                    \
                          KvResourceLookupHeaderOp<K, false>);                \
  REGISTER_KERNEL_BUILDER(Name("KvResourceLookupVersion")                     \
                              .Device(DEVICE_CPU)                             \
                              .TypeConstraint<K>("Tkeys"),                    \
                          KvResourceLookupHeaderOp<K, true>);                 \
  REGISTER_KERNEL_BUILDER(                                                    \
      Name("KvResourceExport").Device(DEVICE_CPU).TypeConstraint<K>("Tkeys"), \
      KvResourceExportOp<K>);                                                 \
  REGISTER_KERNEL_BUILDER(                                                    \
      Name("KvResourceImport").Device(DEVICE_CPU).TypeConstraint<K>("Tkeys"), \
      KvResourceImportOp<K>);                                                 \
  REGISTER_KERNEL_BUILDER(                                                    \
      Name("KvResourceEvict").Device(DEVICE_CPU).TypeConstraint<K>("Tkeys"),  \
      KvResourceEvictOp<K>);                                                  \
  REGISTER_KERNEL_BUILDER(                                                    \
      Name("KvVariableStats").Device(DEVICE_CPU).TypeConstraint<K>("Tkeys"),  \
      KvVariableStatsOp<K>);

REGISTER_KV_KERNELS(int64_t);
REGISTER_KV_KERNELS(int32_t);
#undef REGISTER_KV_KERNELS

}  // namespace
}  // namespace deeprec
