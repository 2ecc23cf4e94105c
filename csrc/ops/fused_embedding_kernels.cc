// CPU kernels of the fused sparse embedding lookup: FusedEmbeddingSparse
// PreLookUp, PostLookUp and PostLookUpGrad (see fused_embedding_ops.cc).
//
// Kernels keep no state between calls, so concurrent runs are independent.
// Sums run in a fixed order (entries in input order within an output row or
// gathered row), so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "csrc/ops/kernel_util.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/util/overflow.h"

namespace deeprec {
namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpInputList;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::OpOutputList;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::TensorShapeUtils;
namespace errors = tensorflow::errors;

// Partitioned EmbeddingVariables route key k to (k mod 1000) mod shards.
constexpr int64_t kEvBuckets = 1000;

enum class Combiner { kSum, kMean, kSqrtn };

Status ParseCombiner(const std::string& name, Combiner* combiner) {
  if (name == "sum") {
    *combiner = Combiner::kSum;
  } else if (name == "mean") {
    *combiner = Combiner::kMean;
  } else if (name == "sqrtn") {
    *combiner = Combiner::kSqrtn;
  } else {
    return errors::InvalidArgument(
        "combiner must be 'sum', 'mean' or 'sqrtn', got '", name, "'");
  }
  return tensorflow::OkStatus();
}

// "[2 3]" for a small shape vector, for error messages.
std::string ShapeString(const Tensor& dense_shape) {
  return "[" + dense_shape.SummarizeValue(16) + "]";
}

Status RequireVector(OpKernelContext* ctx, const Tensor& t, const char* arg) {
  if (TensorShapeUtils::IsVector(t.shape())) return tensorflow::OkStatus();
  return errors::InvalidArgument(ctx->op_kernel().type_string(), ": ", arg,
                                 " must be a vector, got shape ",
                                 t.shape().DebugString());
}

Status RequireLength(OpKernelContext* ctx, const Tensor& t, const char* arg,
                     int64_t n, const char* other) {
  if (t.dim_size(0) == n) return tensorflow::OkStatus();
  return errors::InvalidArgument(ctx->op_kernel().type_string(), ": ", arg,
                                 " has ", t.dim_size(0), " elements but ",
                                 other, " has ", n);
}

// prod(sp_dense_shape[:-1]): the number of combined output rows.
Status CombinedRowCount(OpKernelContext* ctx, const Tensor& dense_shape,
                        int64_t* rows) {
  TF_RETURN_IF_ERROR(RequireVector(ctx, dense_shape, "sp_dense_shape"));
  const auto shape = dense_shape.flat<int64_t>();
  if (shape.size() < 2) {
    return errors::InvalidArgument(
        ctx->op_kernel().type_string(),
        ": sparse ids must have rank >= 2, got sp_dense_shape ",
        ShapeString(dense_shape));
  }
  int64_t product = 1;
  for (int64_t i = 0; i < shape.size(); ++i) {
    if (shape(i) < 0) {
      return errors::InvalidArgument(ctx->op_kernel().type_string(),
                                     ": sp_dense_shape[", i, "] = ", shape(i),
                                     " is negative");
    }
    if (i + 1 < shape.size()) {
      product = tensorflow::MultiplyWithoutOverflow(product, shape(i));
      if (product < 0) {
        return errors::InvalidArgument(
            ctx->op_kernel().type_string(), ": sp_dense_shape ",
            ShapeString(dense_shape), " has too many rows");
      }
    }
  }
  *rows = product;
  return tensorflow::OkStatus();
}

// Entry indices grouped by key (each key in [0, num_keys)), stable within a
// key: group k is order[start[k] .. start[k + 1]).
struct Groups {
  std::vector<int64_t> order;
  std::vector<int64_t> start;
};

Groups GroupByKey(const int64_t* keys, int64_t n, int64_t num_keys) {
  Groups g;
  g.start.assign(num_keys + 1, 0);
  for (int64_t i = 0; i < n; ++i) ++g.start[keys[i] + 1];
  for (int64_t k = 0; k < num_keys; ++k) g.start[k + 1] += g.start[k];
  g.order.resize(n);
  std::vector<int64_t> next(g.start.begin(), g.start.end() - 1);
  for (int64_t i = 0; i < n; ++i) g.order[next[keys[i]]++] = i;
  return g;
}

// Checks that every value of `t` (int64 vector) lies in [0, limit).
Status CheckRange(OpKernelContext* ctx, const Tensor& t, const char* arg,
                  int64_t limit, const char* what) {
  const auto v = t.flat<int64_t>();
  for (int64_t i = 0; i < v.size(); ++i) {
    if (v(i) < 0 || v(i) >= limit) {
      return errors::InvalidArgument(ctx->op_kernel().type_string(), ": ", arg,
                                     "[", i, "] = ", v(i), " is not in [0, ",
                                     limit, "), the ", what);
    }
  }
  return tensorflow::OkStatus();
}

// A minimal open-addressing map from ids to first-appearance slots, for
// deduplicating the ids of one partition.
class SlotMap {
 public:
  explicit SlotMap(int64_t expected) {
    int64_t capacity = 16;
    while (capacity < 2 * expected) capacity <<= 1;
    Reset(capacity);
  }

  // The slot of `key`, assigning the next free slot to a new key.
  int64_t Insert(int64_t key) {
    if (2 * (size_ + 1) > static_cast<int64_t>(slots_.size())) Grow();
    int64_t i = Probe(key);
    if (slots_[i] < 0) {
      keys_[i] = key;
      slots_[i] = size_++;
    }
    return slots_[i];
  }

 private:
  void Reset(int64_t capacity) {
    keys_.assign(capacity, 0);
    slots_.assign(capacity, -1);
    mask_ = capacity - 1;
  }

  // The cell holding `key`, or the empty cell where it belongs.
  int64_t Probe(int64_t key) const {
    const uint64_t h = static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ull;
    int64_t i = static_cast<int64_t>(h >> 20) & mask_;
    while (slots_[i] >= 0 && keys_[i] != key) i = (i + 1) & mask_;
    return i;
  }

  void Grow() {
    std::vector<int64_t> keys = std::move(keys_), slots = std::move(slots_);
    Reset(2 * static_cast<int64_t>(keys.size()));
    for (size_t j = 0; j < keys.size(); ++j) {
      if (slots[j] < 0) continue;
      const int64_t i = Probe(keys[j]);
      keys_[i] = keys[j];
      slots_[i] = slots[j];
    }
  }

  std::vector<int64_t> keys_;
  std::vector<int64_t> slots_;
  int64_t mask_ = 0;
  int64_t size_ = 0;
};

enum class Strategy { kDiv, kMod, kEmbeddingVariable };

template <typename Tids, typename T>
class FusedEmbeddingSparsePreLookUpOp : public OpKernel {
 public:
  explicit FusedEmbeddingSparsePreLookUpOp(OpKernelConstruction* ctx)
      : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_partitions", &num_partitions_));
    std::string strategy;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("partition_strategy", &strategy));
    strategy_ = strategy == "div"   ? Strategy::kDiv
                : strategy == "mod" ? Strategy::kMod
                                    : Strategy::kEmbeddingVariable;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("sparse_rank", &sparse_rank_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("prune_invalid_ids", &prune_ids_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("prune_invalid_weights", &prune_weights_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("fill_empty_rows", &fill_empty_rows_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("default_id", &default_id_));
    OP_REQUIRES(
        ctx,
        static_cast<int64_t>(static_cast<Tids>(default_id_)) == default_id_,
        errors::InvalidArgument(type_string(), ": default_id = ", default_id_,
                                " does not fit the ids' dtype ",
                                tensorflow::DataTypeString(
                                    tensorflow::DataTypeToEnum<Tids>::value)));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("unique", &unique_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& values = ctx->input(0);
    const Tensor& indices = ctx->input(1);
    const Tensor& dense_shape = ctx->input(2);
    const Tensor& weights = ctx->input(3);
    const Tensor& table_rows_t = ctx->input(4);
    const std::string& op = type_string();
    OP_REQUIRES_OK(ctx, RequireVector(ctx, values, "sp_values"));
    OP_REQUIRES(
        ctx, TensorShapeUtils::IsMatrix(indices.shape()),
        errors::InvalidArgument(op, ": sp_indices must be a matrix, ",
                                "got shape ", indices.shape().DebugString()));
    int64_t num_rows = 0;
    OP_REQUIRES_OK(ctx, CombinedRowCount(ctx, dense_shape, &num_rows));
    const int64_t rank = dense_shape.NumElements();
    OP_REQUIRES(ctx, sparse_rank_ < 0 || rank == sparse_rank_,
                errors::InvalidArgument(op, ": sparse ids must have rank ",
                                        sparse_rank_, ", got sp_dense_shape ",
                                        ShapeString(dense_shape)));
    OP_REQUIRES(ctx, indices.dim_size(1) == rank,
                errors::InvalidArgument(
                    op, ": sp_indices has ", indices.dim_size(1),
                    " columns but sp_dense_shape has ", rank, " dimensions"));
    const int64_t nnz = values.NumElements();
    OP_REQUIRES_OK(ctx,
                   RequireLength(ctx, indices, "sp_indices", nnz, "sp_values"));
    OP_REQUIRES_OK(ctx, RequireVector(ctx, weights, "sp_weights"));
    OP_REQUIRES_OK(ctx,
                   RequireLength(ctx, weights, "sp_weights", nnz, "sp_values"));
    OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(table_rows_t.shape()),
                errors::InvalidArgument(op, ": table_rows must be a scalar, ",
                                        "got shape ",
                                        table_rows_t.shape().DebugString()));
    const int64_t table_rows = table_rows_t.scalar<int64_t>()();
    const bool bounded = strategy_ != Strategy::kEmbeddingVariable;
    OP_REQUIRES(ctx, !bounded || table_rows >= 0,
                errors::InvalidArgument(op, ": table_rows must be >= 0, got ",
                                        table_rows));

    // 1. Keep the valid entries, with their output rows.
    const auto ids = values.flat<Tids>();
    const auto idx = indices.matrix<int64_t>();
    const auto shape = dense_shape.flat<int64_t>();
    const auto w = weights.flat<T>();
    std::vector<int64_t> kept_row, kept_id, kept_source;
    std::vector<T> kept_weight;
    kept_row.reserve(nnz);
    kept_id.reserve(nnz);
    kept_source.reserve(nnz);
    kept_weight.reserve(nnz);
    bool sorted = true;
    for (int64_t i = 0; i < nnz; ++i) {
      int64_t row = 0;
      for (int64_t k = 0; k + 1 < rank; ++k) {
        const int64_t c = idx(i, k);
        OP_REQUIRES(
            ctx, c >= 0 && c < shape(k),
            errors::InvalidArgument(op, ": sp_indices[", i, ", ", k, "] = ", c,
                                    " is out of bounds for sp_dense_shape ",
                                    ShapeString(dense_shape)));
        row = row * shape(k) + c;
      }
      const int64_t id = static_cast<int64_t>(ids(i));
      if (prune_ids_ && id < 0) continue;
      // Written as !(w > 0) so that NaN weights are pruned too, as
      // tf.nn.safe_embedding_lookup_sparse's greater(w, 0) does.
      if (prune_weights_ && !(w(i) > T(0))) continue;
      OP_REQUIRES(ctx, !bounded || (id >= 0 && id < table_rows),
                  errors::InvalidArgument(
                      op, ": sp_values[", i, "] = ", id,
                      " is not a row of the embedding table: not in [0, ",
                      table_rows, ")"));
      if (!kept_row.empty() && row < kept_row.back()) sorted = false;
      kept_row.push_back(row);
      kept_id.push_back(id);
      kept_source.push_back(i);
      kept_weight.push_back(w(i));
    }
    OP_REQUIRES(ctx,
                !fill_empty_rows_ || !bounded ||
                    (default_id_ >= 0 && default_id_ < table_rows),
                errors::InvalidArgument(
                    op, ": default_id = ", default_id_,
                    " is not a row of the embedding table: not in [0, ",
                    table_rows, ")"));

    // 2. Order the entries by output row, filling empty rows.
    std::vector<int64_t> order(kept_row.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (!sorted) {
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return kept_row[a] < kept_row[b];
      });
    }
    std::vector<int64_t> entry_row, entry_id, entry_source;
    std::vector<T> entry_weight;
    const size_t reserve = kept_row.size() + (fill_empty_rows_ ? num_rows : 0);
    entry_row.reserve(reserve);
    entry_id.reserve(reserve);
    entry_source.reserve(reserve);
    entry_weight.reserve(reserve);
    auto emit = [&](int64_t row, int64_t id, T weight, int64_t source) {
      entry_row.push_back(row);
      entry_id.push_back(id);
      entry_weight.push_back(weight);
      entry_source.push_back(source);
    };
    size_t next = 0;
    if (fill_empty_rows_) {
      for (int64_t row = 0; row < num_rows; ++row) {
        if (next == order.size() || kept_row[order[next]] != row) {
          emit(row, default_id_, T(1), -1);
          continue;
        }
        for (; next < order.size() && kept_row[order[next]] == row; ++next) {
          const int64_t i = order[next];
          emit(row, kept_id[i], kept_weight[i], kept_source[i]);
        }
      }
    } else {
      for (int64_t i : order) {
        emit(kept_row[i], kept_id[i], kept_weight[i], kept_source[i]);
      }
    }

    // 3. Route each entry to a partition and a gathered row there.
    const int64_t n = entry_row.size();
    std::vector<int> part(n);
    std::vector<int64_t> local(n), position(n);
    std::vector<int64_t> gathered(num_partitions_, 0);
    std::vector<SlotMap> slots;
    if (unique_) slots.assign(num_partitions_, SlotMap(n / num_partitions_));
    for (int64_t e = 0; e < n; ++e) {
      Route(entry_id[e], table_rows, &part[e], &local[e]);
      if (unique_) {
        position[e] = slots[part[e]].Insert(local[e]);
        gathered[part[e]] = std::max(gathered[part[e]], position[e] + 1);
      } else {
        position[e] = gathered[part[e]]++;
      }
    }

    OpOutputList partitioned_ids;
    OP_REQUIRES_OK(ctx, ctx->output_list("partitioned_ids", &partitioned_ids));
    std::vector<Tids*> out_ids(num_partitions_);
    std::vector<int64_t> offset(num_partitions_, 0);
    for (int p = 0; p < num_partitions_; ++p) {
      Tensor* t = nullptr;
      OP_REQUIRES_OK(
          ctx, partitioned_ids.allocate(p, TensorShape({gathered[p]}), &t));
      out_ids[p] = t->flat<Tids>().data();
      if (p + 1 < num_partitions_) offset[p + 1] = offset[p] + gathered[p];
    }
    Tensor* positions_t = nullptr;
    Tensor* rows_t = nullptr;
    Tensor* weights_t = nullptr;
    Tensor* sources_t = nullptr;
    const int first = num_partitions_;
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(first, TensorShape({n}), &positions_t));
    OP_REQUIRES_OK(ctx,
                   ctx->allocate_output(first + 1, TensorShape({n}), &rows_t));
    OP_REQUIRES_OK(
        ctx, ctx->allocate_output(first + 2, TensorShape({n}), &weights_t));
    OP_REQUIRES_OK(
        ctx, ctx->allocate_output(first + 3, TensorShape({n}), &sources_t));
    auto positions = positions_t->flat<int64_t>();
    auto rows = rows_t->flat<int64_t>();
    auto out_weights = weights_t->flat<T>();
    auto sources = sources_t->flat<int64_t>();
    for (int64_t e = 0; e < n; ++e) {
      out_ids[part[e]][position[e]] = static_cast<Tids>(local[e]);
      positions(e) = offset[part[e]] + position[e];
      rows(e) = entry_row[e];
      out_weights(e) = entry_weight[e];
      sources(e) = entry_source[e];
    }
  }

 private:
  // Partition and id within it, as tf.nn.embedding_lookup splits a table of
  // `table_rows` rows ('div': contiguous blocks, the first table_rows % n
  // blocks one row longer; 'mod': round robin), or as partitioned
  // EmbeddingVariables route raw keys.
  void Route(int64_t id, int64_t table_rows, int* part, int64_t* local) const {
    const int64_t n = num_partitions_;
    switch (strategy_) {
      case Strategy::kDiv: {
        const int64_t per_part = table_rows / n;
        const int64_t extras = table_rows % n;
        const int64_t long_rows = extras * (per_part + 1);
        if (id < long_rows) {
          *part = static_cast<int>(id / (per_part + 1));
          *local = id % (per_part + 1);
        } else {
          *part = static_cast<int>(extras + (id - long_rows) / per_part);
          *local = (id - long_rows) % per_part;
        }
        return;
      }
      case Strategy::kMod:
        *part = static_cast<int>(id % n);
        *local = id / n;
        return;
      case Strategy::kEmbeddingVariable: {
        int64_t bucket = id % kEvBuckets;
        if (bucket < 0) bucket += kEvBuckets;
        *part = static_cast<int>(bucket % n);
        *local = id;
        return;
      }
    }
  }

  int num_partitions_ = 1;
  Strategy strategy_ = Strategy::kDiv;
  int64_t sparse_rank_ = -1;
  bool prune_ids_ = false;
  bool prune_weights_ = false;
  bool fill_empty_rows_ = false;
  int64_t default_id_ = 0;
  bool unique_ = false;
};

// The gathered rows (concatenated over shards) seen by the post-lookup ops.
template <typename T>
struct GatheredRows {
  std::vector<const T*> row;  // Row u starts at row[u].
  int64_t dim = -1;
};

template <typename T>
Status CollectShards(OpKernelContext* ctx, const OpInputList& shards,
                     GatheredRows<T>* gathered) {
  for (int p = 0; p < shards.size(); ++p) {
    const Tensor& shard = shards[p];
    if (!TensorShapeUtils::IsMatrix(shard.shape())) {
      return errors::InvalidArgument(
          ctx->op_kernel().type_string(), ": emb_shards[", p,
          "] must be a matrix, got shape ", shard.shape().DebugString());
    }
    if (p == 0) gathered->dim = shard.dim_size(1);
    if (shard.dim_size(1) != gathered->dim) {
      return errors::InvalidArgument(
          ctx->op_kernel().type_string(), ": emb_shards[", p, "] has ",
          shard.dim_size(1), " columns but emb_shards[0] has ", gathered->dim);
    }
    const T* data = shard.flat<T>().data();
    for (int64_t r = 0; r < shard.dim_size(0); ++r) {
      gathered->row.push_back(data + r * gathered->dim);
    }
  }
  return tensorflow::OkStatus();
}

// Validated entry tensors shared by the post-lookup ops.
Status CheckEntries(OpKernelContext* ctx, const Tensor& positions,
                    const Tensor& rows, const Tensor& weights,
                    int64_t num_gathered, int64_t num_rows) {
  TF_RETURN_IF_ERROR(RequireVector(ctx, positions, "positions"));
  TF_RETURN_IF_ERROR(RequireVector(ctx, rows, "rows"));
  TF_RETURN_IF_ERROR(RequireVector(ctx, weights, "weights"));
  const int64_t n = positions.NumElements();
  TF_RETURN_IF_ERROR(RequireLength(ctx, rows, "rows", n, "positions"));
  TF_RETURN_IF_ERROR(RequireLength(ctx, weights, "weights", n, "positions"));
  TF_RETURN_IF_ERROR(CheckRange(ctx, positions, "positions", num_gathered,
                                "rows of emb_shards"));
  return CheckRange(ctx, rows, "rows", num_rows, "output rows");
}

// Per output row r, the divisor of its weighted sum (0: the row is zero).
template <typename T>
std::vector<T> RowNorms(Combiner combiner, const int64_t* rows,
                        const T* weights, int64_t n, int64_t num_rows) {
  std::vector<T> norm(num_rows, T(combiner == Combiner::kSum ? 1 : 0));
  if (combiner == Combiner::kSum) return norm;
  for (int64_t i = 0; i < n; ++i) {
    norm[rows[i]] +=
        combiner == Combiner::kMean ? weights[i] : weights[i] * weights[i];
  }
  if (combiner == Combiner::kSqrtn) {
    for (T& v : norm) v = std::sqrt(v);
  }
  return norm;
}

// The factor max_norm / max(|x|, max_norm) that clips row x to max_norm, as
// tf.clip_by_norm computes it; its |x| as well, for the gradient.
template <typename T>
void ClipScale(const T* x, int64_t dim, T max_norm, T* scale, T* length) {
  T sum = 0;
  for (int64_t k = 0; k < dim; ++k) sum += x[k] * x[k];
  *length = std::sqrt(sum);
  *scale = max_norm / std::max(*length, max_norm);
}

// The attrs shared by the post-lookup op and its gradients.
class PostLookUpKernel : public OpKernel {
 public:
  explicit PostLookUpKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::string combiner;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("combiner", &combiner));
    OP_REQUIRES_OK(ctx, ParseCombiner(combiner, &combiner_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("max_norm", &max_norm_));
  }

 protected:
  // Checks that `t` (input `arg`) has shape [rows, dim].
  Status CheckRowsByDim(const Tensor& t, const char* arg, int64_t dim) const {
    if (TensorShapeUtils::IsMatrix(t.shape()) && t.dim_size(1) == dim) {
      return tensorflow::OkStatus();
    }
    return errors::InvalidArgument(type_string(), ": ", arg,
                                   " must have shape [rows, ", dim, "], got ",
                                   t.shape().DebugString());
  }

  Combiner combiner_ = Combiner::kMean;
  float max_norm_ = -1;
};

template <typename T>
class FusedEmbeddingSparsePostLookUpOp : public PostLookUpKernel {
 public:
  using PostLookUpKernel::PostLookUpKernel;

  void Compute(OpKernelContext* ctx) override {
    OpInputList shards;
    OP_REQUIRES_OK(ctx, ctx->input_list("emb_shards", &shards));
    GatheredRows<T> gathered;
    OP_REQUIRES_OK(ctx, CollectShards(ctx, shards, &gathered));
    const int first = shards.size();
    const Tensor& positions_t = ctx->input(first);
    const Tensor& rows_t = ctx->input(first + 1);
    const Tensor& weights_t = ctx->input(first + 2);
    int64_t num_rows = 0;
    OP_REQUIRES_OK(ctx,
                   CombinedRowCount(ctx, ctx->input(first + 3), &num_rows));
    const int64_t num_gathered = gathered.row.size();
    OP_REQUIRES_OK(ctx, CheckEntries(ctx, positions_t, rows_t, weights_t,
                                     num_gathered, num_rows));
    const int64_t dim = gathered.dim;
    Tensor* out_t = nullptr;
    OP_REQUIRES_OK(
        ctx, ctx->allocate_output(0, TensorShape({num_rows, dim}), &out_t));
    T* out = out_t->flat<T>().data();
    const int64_t n = positions_t.NumElements();
    const int64_t* positions = positions_t.flat<int64_t>().data();
    const int64_t* rows = rows_t.flat<int64_t>().data();
    const T* weights = weights_t.flat<T>().data();

    std::vector<T> scale;
    if (max_norm_ > 0) {
      scale.resize(num_gathered);
      const T max_norm = static_cast<T>(max_norm_);
      ParallelRange(ctx, num_gathered, 4 * dim, [&](int64_t lo, int64_t hi) {
        for (int64_t u = lo; u < hi; ++u) {
          T length;
          ClipScale(gathered.row[u], dim, max_norm, &scale[u], &length);
        }
      });
    }
    const std::vector<T> norm = RowNorms(combiner_, rows, weights, n, num_rows);
    const Groups by_row = GroupByKey(rows, n, num_rows);
    const int64_t cost = (n / std::max<int64_t>(num_rows, 1) + 1) * 3 * dim;
    ParallelRange(ctx, num_rows, cost, [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        T* dst = out + r * dim;
        std::fill(dst, dst + dim, T(0));
        if (norm[r] == T(0)) continue;  // div_no_nan, as TF's combiners.
        for (int64_t j = by_row.start[r]; j < by_row.start[r + 1]; ++j) {
          const int64_t e = by_row.order[j];
          const T* x = gathered.row[positions[e]];
          const T s = scale.empty() ? T(1) : scale[positions[e]];
          for (int64_t k = 0; k < dim; ++k) dst[k] += x[k] * s * weights[e];
        }
        if (combiner_ != Combiner::kSum) {
          for (int64_t k = 0; k < dim; ++k) dst[k] /= norm[r];
        }
      }
    });
  }
};

template <typename T>
class FusedEmbeddingSparsePostLookUpGradOp : public PostLookUpKernel {
 public:
  using PostLookUpKernel::PostLookUpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& top_grad_t = ctx->input(0);
    OpInputList shards;
    OP_REQUIRES_OK(ctx, ctx->input_list("emb_shards", &shards));
    GatheredRows<T> gathered;
    OP_REQUIRES_OK(ctx, CollectShards(ctx, shards, &gathered));
    const int64_t dim = gathered.dim;
    OP_REQUIRES_OK(ctx, CheckRowsByDim(top_grad_t, "top_grad", dim));
    const int first = 1 + shards.size();
    const Tensor& positions_t = ctx->input(first);
    const Tensor& rows_t = ctx->input(first + 1);
    const Tensor& weights_t = ctx->input(first + 2);
    const int64_t num_rows = top_grad_t.dim_size(0);
    const int64_t num_gathered = gathered.row.size();
    OP_REQUIRES_OK(ctx, CheckEntries(ctx, positions_t, rows_t, weights_t,
                                     num_gathered, num_rows));
    OpOutputList grads;
    OP_REQUIRES_OK(ctx, ctx->output_list("grad_shards", &grads));
    std::vector<T*> grad_row(num_gathered);
    int64_t u = 0;
    for (int p = 0; p < shards.size(); ++p) {
      Tensor* t = nullptr;
      OP_REQUIRES_OK(ctx, grads.allocate(p, shards[p].shape(), &t));
      T* data = t->flat<T>().data();
      for (int64_t r = 0; r < shards[p].dim_size(0); ++r, ++u) {
        grad_row[u] = data + r * dim;
      }
    }
    const int64_t n = positions_t.NumElements();
    const int64_t* positions = positions_t.flat<int64_t>().data();
    const int64_t* rows = rows_t.flat<int64_t>().data();
    const T* weights = weights_t.flat<T>().data();
    const T* top_grad = top_grad_t.flat<T>().data();
    const std::vector<T> norm = RowNorms(combiner_, rows, weights, n, num_rows);
    const Groups by_position = GroupByKey(positions, n, num_gathered);
    const T max_norm = static_cast<T>(max_norm_);
    const int64_t cost = (n / std::max<int64_t>(num_gathered, 1) + 1) * 4 * dim;
    ParallelRange(ctx, num_gathered, cost, [&](int64_t lo, int64_t hi) {
      for (int64_t u = lo; u < hi; ++u) {
        T* g = grad_row[u];
        std::fill(g, g + dim, T(0));
        for (int64_t j = by_position.start[u]; j < by_position.start[u + 1];
             ++j) {
          const int64_t e = by_position.order[j];
          const T row_norm = norm[rows[e]];
          if (row_norm == T(0)) continue;
          const T* dy = top_grad + rows[e] * dim;
          for (int64_t k = 0; k < dim; ++k) {
            g[k] += combiner_ == Combiner::kSum ? dy[k] * weights[e]
                                                : dy[k] / row_norm * weights[e];
          }
        }
        if (max_norm_ > 0) ClipGradient(gathered.row[u], dim, max_norm, g);
      }
    });
  }

 private:
  // Turns g = dL/dy into dL/dx for y = x * max_norm / max(|x|, max_norm):
  // identity inside the ball, and for |x| > max_norm the Jacobian
  // (max_norm / |x|) (I - x x^T / |x|^2), which removes g's radial part.
  static void ClipGradient(const T* x, int64_t dim, T max_norm, T* g) {
    T scale, length;
    ClipScale(x, dim, max_norm, &scale, &length);
    if (!(length > max_norm)) return;
    T dot = 0;
    for (int64_t k = 0; k < dim; ++k) dot += x[k] * g[k];
    const T radial = dot / (length * length);
    for (int64_t k = 0; k < dim; ++k) g[k] = scale * (g[k] - x[k] * radial);
  }
};

template <typename T>
class FusedEmbeddingSparsePostLookUpWeightsGradOp : public PostLookUpKernel {
 public:
  using PostLookUpKernel::PostLookUpKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& top_grad_t = ctx->input(0);
    OpInputList shards;
    OP_REQUIRES_OK(ctx, ctx->input_list("emb_shards", &shards));
    GatheredRows<T> gathered;
    OP_REQUIRES_OK(ctx, CollectShards(ctx, shards, &gathered));
    const int64_t dim = gathered.dim;
    OP_REQUIRES_OK(ctx, CheckRowsByDim(top_grad_t, "top_grad", dim));
    const int first = 1 + shards.size();
    const Tensor& positions_t = ctx->input(first);
    const Tensor& rows_t = ctx->input(first + 1);
    const Tensor& weights_t = ctx->input(first + 2);
    const Tensor& embeddings_t = ctx->input(first + 3);
    const int64_t num_rows = top_grad_t.dim_size(0);
    OP_REQUIRES(ctx, embeddings_t.shape() == top_grad_t.shape(),
                errors::InvalidArgument(
                    type_string(), ": embeddings has shape ",
                    embeddings_t.shape().DebugString(), " but top_grad has ",
                    top_grad_t.shape().DebugString()));
    OP_REQUIRES_OK(ctx, CheckEntries(ctx, positions_t, rows_t, weights_t,
                                     gathered.row.size(), num_rows));
    const int64_t n = positions_t.NumElements();
    Tensor* out_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n}), &out_t));
    T* out = out_t->flat<T>().data();
    const int64_t* positions = positions_t.flat<int64_t>().data();
    const int64_t* rows = rows_t.flat<int64_t>().data();
    const T* weights = weights_t.flat<T>().data();
    const T* top_grad = top_grad_t.flat<T>().data();
    const T* embeddings = embeddings_t.flat<T>().data();
    const std::vector<T> norm = RowNorms(combiner_, rows, weights, n, num_rows);
    const T max_norm = static_cast<T>(max_norm_);
    // With y = S / N, S = sum_i w_i c_i (c_i the clipped rows): dy/dw_i is
    // c_i / N - y (dN/dw_i) / N, where dN/dw_i is 0 ('sum'), 1 ('mean') or
    // w_i / N ('sqrtn').
    ParallelRange(ctx, n, 6 * dim, [&](int64_t lo, int64_t hi) {
      for (int64_t e = lo; e < hi; ++e) {
        const int64_t r = rows[e];
        const T row_norm = norm[r];
        out[e] = 0;
        if (row_norm == T(0)) continue;
        const T* x = gathered.row[positions[e]];
        const T* dy = top_grad + r * dim;
        T scale = 1, length;
        if (max_norm_ > 0) ClipScale(x, dim, max_norm, &scale, &length);
        T dy_c = 0, dy_y = 0;
        for (int64_t k = 0; k < dim; ++k) {
          dy_c += dy[k] * x[k] * scale;
          dy_y += dy[k] * embeddings[r * dim + k];
        }
        switch (combiner_) {
          case Combiner::kSum:
            out[e] = dy_c;
            break;
          case Combiner::kMean:
            out[e] = (dy_c - dy_y) / row_norm;
            break;
          case Combiner::kSqrtn:
            out[e] =
                dy_c / row_norm - dy_y * weights[e] / (row_norm * row_norm);
            break;
        }
      }
    });
  }
};

#define REGISTER_PRE_LOOKUP(Tids, T)                            \
  REGISTER_KERNEL_BUILDER(Name("FusedEmbeddingSparsePreLookUp") \
                              .Device(DEVICE_CPU)               \
                              .TypeConstraint<Tids>("Tids")     \
                              .TypeConstraint<T>("T"),          \
                          FusedEmbeddingSparsePreLookUpOp<Tids, T>)
REGISTER_PRE_LOOKUP(int32_t, float);
REGISTER_PRE_LOOKUP(int64_t, float);
REGISTER_PRE_LOOKUP(int32_t, double);
REGISTER_PRE_LOOKUP(int64_t, double);
#undef REGISTER_PRE_LOOKUP

#define REGISTER_POST_LOOKUP(T)                                             \
  REGISTER_KERNEL_BUILDER(Name("FusedEmbeddingSparsePostLookUp")            \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          FusedEmbeddingSparsePostLookUpOp<T>);             \
  REGISTER_KERNEL_BUILDER(Name("FusedEmbeddingSparsePostLookUpGrad")        \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          FusedEmbeddingSparsePostLookUpGradOp<T>);         \
  REGISTER_KERNEL_BUILDER(Name("FusedEmbeddingSparsePostLookUpWeightsGrad") \
                              .Device(DEVICE_CPU)                           \
                              .TypeConstraint<T>("T"),                      \
                          FusedEmbeddingSparsePostLookUpWeightsGradOp<T>)
REGISTER_POST_LOOKUP(float);
REGISTER_POST_LOOKUP(double);
#undef REGISTER_POST_LOOKUP

}  // namespace
}  // namespace deeprec
