// KvResourceImportFromCheckpoint: restores an EmbeddingVariable column
// straight from a checkpoint bundle, so a variable saved with n shards can be
// restored into m shards. Each shard reads every saved shard's tensors and
// keeps the keys routed to it (floormod(key, 1000) % partition_num).
#include <memory>
#include <string>
#include <vector>

#include "csrc/embedding/embedding_table.h"
#include "csrc/ops/embedding_var.h"
#include "csrc/ops/kernel_util.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/util/tensor_bundle/tensor_bundle.h"

namespace deeprec {
namespace {

using tensorflow::BundleReader;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::core::RefCountPtr;
namespace errors = tensorflow::errors;

// Rows of one saved tensor group that belong to the restoring shard.
template <typename K>
struct Rows {
  std::vector<K> keys;
  std::vector<float> values;
  std::vector<int64_t> freqs;
  std::vector<int64_t> versions;
  // Ids counted but not admitted (primary variables with a filter only).
  std::vector<K> keys_filtered;
  std::vector<int64_t> freqs_filtered;
  std::vector<int64_t> versions_filtered;
};

template <typename K>
class KvResourceImportFromCheckpointOp : public OpKernel {
 public:
  explicit KvResourceImportFromCheckpointOp(OpKernelConstruction* ctx)
      : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("root", &root_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("suffix", &suffix_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("partition_id", &partition_id_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("partition_num", &partition_num_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("drop_absent", &drop_absent_));
    OP_REQUIRES(
        ctx, partition_id_ < partition_num_,
        errors::InvalidArgument(
            "KvResourceImportFromCheckpoint: partition_id ", partition_id_,
            " out of range for partition_num ", partition_num_));
  }

  void Compute(OpKernelContext* ctx) override {
    RefCountPtr<EmbeddingVar<K>> var;
    std::shared_ptr<embedding::EmbeddingTable<K>> table;
    OP_REQUIRES_OK(ctx, LookupEmbeddingVar<K>(ctx, 1, &var, &table));
    const std::string prefix = ctx->input(0).scalar<tensorflow::tstring>()();
    BundleReader reader(tensorflow::Env::Default(), prefix);
    OP_REQUIRES_OK(ctx, reader.status());

    std::vector<std::string> groups;
    if (reader.Contains(root_ + suffix_ + "-keys")) {
      groups.push_back(root_ + suffix_);
    }
    for (int i = 0;; ++i) {
      std::string group = root_ + "/part_" + std::to_string(i) + suffix_;
      if (!reader.Contains(group + "-keys")) break;
      groups.push_back(group);
    }
    OP_REQUIRES(ctx, !groups.empty(),
                errors::NotFound("KvResourceImportFromCheckpoint: checkpoint '",
                                 prefix, "' has neither '", root_, suffix_,
                                 "-keys' nor '", root_, "/part_0", suffix_,
                                 "-keys' for EmbeddingVariable '",
                                 HandleFromInput(ctx, 1).name(), "'"));
    Rows<K> rows;
    for (const std::string& group : groups) {
      OP_REQUIRES_OK(ctx, ReadGroup(&reader, group, table->dim(),
                                    HandleFromInput(ctx, 1).name(), &rows));
    }
    const int64_t n = static_cast<int64_t>(rows.keys.size());
    const bool has_header = rows.freqs.size() == rows.keys.size() &&
                            rows.versions.size() == rows.keys.size();
    typename embedding::EmbeddingTable<K>::FilteredRows filtered;
    filtered.keys = rows.keys_filtered.data();
    filtered.n = static_cast<int64_t>(rows.keys_filtered.size());
    filtered.freqs = rows.freqs_filtered.data();
    filtered.versions = rows.versions_filtered.data();
    try {
      table->Import(rows.keys.data(), n, var->column(), rows.values.data(),
                    has_header ? rows.freqs.data() : nullptr,
                    has_header ? rows.versions.data() : nullptr, drop_absent_,
                    filtered);
    } catch (const std::exception& e) {
      ctx->SetStatus(EngineError(ctx, e));
    }
  }

 private:
  Status ReadGroup(BundleReader* reader, const std::string& group, int64_t dim,
                   const std::string& var_name, Rows<K>* rows) {
    Tensor keys, values;
    TF_RETURN_IF_ERROR(reader->Lookup(group + "-keys", &keys));
    TF_RETURN_IF_ERROR(reader->Lookup(group + "-values", &values));
    const int64_t n = keys.NumElements();
    if (values.dims() != 2 || values.dim_size(1) != dim ||
        values.dim_size(0) != n) {
      return errors::InvalidArgument(
          "KvResourceImportFromCheckpoint: checkpoint tensor '", group,
          "-values' has shape ", values.shape().DebugString(),
          " (embedding dim ", values.dims() == 2 ? values.dim_size(1) : -1,
          ", ", n, " keys) but EmbeddingVariable '", var_name,
          "' has embedding dim ", dim);
    }
    Tensor freqs, versions;
    const bool has_header = reader->Contains(group + "-freqs") &&
                            reader->Contains(group + "-versions");
    if (has_header) {
      TF_RETURN_IF_ERROR(reader->Lookup(group + "-freqs", &freqs));
      TF_RETURN_IF_ERROR(reader->Lookup(group + "-versions", &versions));
    }
    const bool use_header =
        has_header && freqs.NumElements() == n && versions.NumElements() == n;
    const float* value_data = values.flat<float>().data();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t key = KeyAt(keys, i);
      if (embedding::Bucket(key) % partition_num_ != partition_id_) continue;
      rows->keys.push_back(static_cast<K>(key));
      rows->values.insert(rows->values.end(), value_data + i * dim,
                          value_data + (i + 1) * dim);
      if (use_header) {
        rows->freqs.push_back(freqs.flat<int64_t>()(i));
        rows->versions.push_back(versions.flat<int64_t>()(i));
      }
    }
    return drop_absent_ ? ReadFiltered(reader, group, rows)
                        : tensorflow::OkStatus();
  }

  // Adds the group's not-admitted ids routed to this shard; checkpoints
  // without filtered tensors (or with empty ones) add nothing.
  Status ReadFiltered(BundleReader* reader, const std::string& group,
                      Rows<K>* rows) {
    if (!reader->Contains(group + "-keys_filtered")) {
      return tensorflow::OkStatus();
    }
    Tensor keys, freqs, versions;
    TF_RETURN_IF_ERROR(reader->Lookup(group + "-keys_filtered", &keys));
    if (reader->Contains(group + "-freqs_filtered")) {
      TF_RETURN_IF_ERROR(reader->Lookup(group + "-freqs_filtered", &freqs));
    }
    if (reader->Contains(group + "-versions_filtered")) {
      TF_RETURN_IF_ERROR(
          reader->Lookup(group + "-versions_filtered", &versions));
    }
    const int64_t n = keys.NumElements();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t key = KeyAt(keys, i);
      if (embedding::Bucket(key) % partition_num_ != partition_id_) continue;
      rows->keys_filtered.push_back(static_cast<K>(key));
      rows->freqs_filtered.push_back(
          freqs.NumElements() == n ? freqs.flat<int64_t>()(i) : 0);
      rows->versions_filtered.push_back(
          versions.NumElements() == n ? versions.flat<int64_t>()(i) : -1);
    }
    return tensorflow::OkStatus();
  }

  static int64_t KeyAt(const Tensor& keys, int64_t i) {
    return keys.dtype() == tensorflow::DT_INT32 ? keys.flat<int32_t>()(i)
                                                : keys.flat<int64_t>()(i);
  }

  std::string root_;
  std::string suffix_;
  int64_t partition_id_ = 0;
  int64_t partition_num_ = 1;
  bool drop_absent_ = false;
};

#define REGISTER_IMPORT_KERNEL(K)                                \
  REGISTER_KERNEL_BUILDER(Name("KvResourceImportFromCheckpoint") \
                              .Device(tensorflow::DEVICE_CPU)    \
                              .TypeConstraint<K>("Tkeys"),       \
                          KvResourceImportFromCheckpointOp<K>);
REGISTER_IMPORT_KERNEL(int64_t);
REGISTER_IMPORT_KERNEL(int32_t);
#undef REGISTER_IMPORT_KERNEL

}  // namespace
}  // namespace deeprec
