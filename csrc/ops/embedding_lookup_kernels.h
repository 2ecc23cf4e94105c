// Kernel logic shared by the fused (fused_embedding_kernels.cc) and grouped
// (group_embedding_kernels.cc) sparse embedding lookups, one feature at a
// time:
//
// - planning a lookup: validate the sparse ids, prune, fill empty rows,
//   order the entries by output row, route ids to partitions and (for
//   `unique`) deduplicate them;
// - combining the gathered rows per output row (with max_norm clipping) and
//   the gradients of that with respect to the gathered rows and the weights.
//
// Callers decide how features and rows are spread over threads. Nothing here
// keeps state between calls. Sums run in a fixed order (entries in input
// order within an output row or gathered row), so results do not depend on
// the thread count.
#ifndef DEEPREC_OPS_EMBEDDING_LOOKUP_KERNELS_H_
#define DEEPREC_OPS_EMBEDDING_LOOKUP_KERNELS_H_

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/platform/errors.h"
#include "tensorflow/core/util/overflow.h"

namespace deeprec {
namespace lookup {

using tensorflow::OpInputList;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShapeUtils;
namespace errors = tensorflow::errors;

// Partitioned EmbeddingVariables route key k to (k mod 1000) mod shards.
constexpr int64_t kEvBuckets = 1000;

enum class Combiner { kSum, kMean, kSqrtn };

inline Status ParseCombiner(const std::string& name, Combiner* combiner) {
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

// How ids are routed to the partitions of a table: as tf.nn.embedding_lookup
// splits a dense table ('div', 'mod'), or by key as partitioned
// EmbeddingVariables do ('ev').
enum class Strategy { kDiv, kMod, kEmbeddingVariable };

inline Status ParseStrategy(const std::string& name, Strategy* strategy) {
  if (name == "div") {
    *strategy = Strategy::kDiv;
  } else if (name == "mod") {
    *strategy = Strategy::kMod;
  } else if (name == "ev") {
    *strategy = Strategy::kEmbeddingVariable;
  } else {
    return errors::InvalidArgument(
        "partition_strategy must be 'div', 'mod' or 'ev', got '", name, "'");
  }
  return tensorflow::OkStatus();
}

// Names the op and the inputs of one feature in error messages: "sp_values"
// for an op over one feature, "sp_values[3]" for feature 3 of a group op.
class ArgNames {
 public:
  explicit ArgNames(std::string op, int feature = -1)
      : op_(std::move(op)), feature_(feature) {}

  const std::string& op() const { return op_; }

  std::string operator()(const char* arg) const {
    if (feature_ < 0) return arg;
    return std::string(arg) + "[" + std::to_string(feature_) + "]";
  }

 private:
  std::string op_;
  int feature_;
};

// "[2 3]" for a small shape vector, for error messages.
inline std::string ShapeString(const Tensor& dense_shape) {
  return "[" + dense_shape.SummarizeValue(16) + "]";
}

inline Status RequireVector(const ArgNames& names, const Tensor& t,
                            const char* arg) {
  if (TensorShapeUtils::IsVector(t.shape())) return tensorflow::OkStatus();
  return errors::InvalidArgument(names.op(), ": ", names(arg),
                                 " must be a vector, got shape ",
                                 t.shape().DebugString());
}

inline Status RequireLength(const ArgNames& names, const Tensor& t,
                            const char* arg, int64_t n, const char* other) {
  if (t.dim_size(0) == n) return tensorflow::OkStatus();
  return errors::InvalidArgument(names.op(), ": ", names(arg), " has ",
                                 t.dim_size(0), " elements but ", names(other),
                                 " has ", n);
}

// The number of output rows of a lookup with dense shape `dense_shape`:
// prod(dense_shape[:-1]) when the last dimension is combined (which needs
// rank >= 2), prod(dense_shape) otherwise.
inline Status OutputRowCount(const ArgNames& names, const Tensor& dense_shape,
                             bool combine_last, int64_t* rows) {
  TF_RETURN_IF_ERROR(RequireVector(names, dense_shape, "sp_dense_shape"));
  const auto shape = dense_shape.flat<int64_t>();
  if (combine_last && shape.size() < 2) {
    return errors::InvalidArgument(
        names.op(), ": sparse ids must have rank >= 2, got ",
        names("sp_dense_shape"), " ", ShapeString(dense_shape));
  }
  const int64_t combined = combine_last ? shape.size() - 1 : shape.size();
  int64_t product = 1;
  for (int64_t i = 0; i < shape.size(); ++i) {
    if (shape(i) < 0) {
      return errors::InvalidArgument(names.op(), ": ", names("sp_dense_shape"),
                                     "[", i, "] = ", shape(i), " is negative");
    }
    if (i < combined) {
      product = tensorflow::MultiplyWithoutOverflow(product, shape(i));
      if (product < 0) {
        return errors::InvalidArgument(
            names.op(), ": ", names("sp_dense_shape"), " ",
            ShapeString(dense_shape), " has too many rows");
      }
    }
  }
  *rows = product;
  return tensorflow::OkStatus();
}

// Entry indices grouped by key (each key in [0, num_keys)), stable within a
// key: group k is entries at(start[k]) .. at(start[k + 1] - 1). Keys that
// are already in order (as the planned rows are) need no permutation.
struct Groups {
  std::vector<int64_t> order;  // Empty: the identity.
  std::vector<int64_t> start;

  int64_t at(int64_t j) const { return order.empty() ? j : order[j]; }
};

inline Groups GroupByKey(const int64_t* keys, int64_t n, int64_t num_keys) {
  Groups g;
  g.start.assign(num_keys + 1, 0);
  // Keys in order (the common case): group k ends after its last entry, or
  // where group k - 1 ends if it is empty. Plain stores, unlike counting,
  // which adds to the same element entry after entry.
  bool sorted = true;
  for (int64_t i = 0; i < n; ++i) {
    g.start[keys[i] + 1] = i + 1;
    sorted &= i == 0 || keys[i] >= keys[i - 1];
  }
  if (sorted) {
    for (int64_t k = 0; k < num_keys; ++k) {
      g.start[k + 1] = std::max(g.start[k + 1], g.start[k]);
    }
    return g;
  }
  std::fill(g.start.begin(), g.start.end(), 0);
  for (int64_t i = 0; i < n; ++i) ++g.start[keys[i] + 1];
  for (int64_t k = 0; k < num_keys; ++k) g.start[k + 1] += g.start[k];
  g.order.resize(n);
  std::vector<int64_t> next(g.start.begin(), g.start.end() - 1);
  for (int64_t i = 0; i < n; ++i) g.order[next[keys[i]]++] = i;
  return g;
}

// Checks that every value of `t` (int64 vector) lies in [0, limit).
inline Status CheckRange(const ArgNames& names, const Tensor& t,
                         const char* arg, int64_t limit, const char* what) {
  const auto v = t.flat<int64_t>();
  for (int64_t i = 0; i < v.size(); ++i) {
    if (v(i) < 0 || v(i) >= limit) {
      return errors::InvalidArgument(names.op(), ": ", names(arg), "[", i,
                                     "] = ", v(i), " is not in [0, ", limit,
                                     "), the ", what);
    }
  }
  return tensorflow::OkStatus();
}

// An id to gather and how many entries read it.
struct Distinct {
  // Leaves the members uninitialized, so that growing a vector of them (the
  // spare keys of a SlotMap, written before they are read) stores nothing.
  Distinct() {}
  Distinct(int64_t id, int64_t entries) : key(id), count(entries) {}

  int64_t key;
  int64_t count;
};

// A minimal open-addressing map from ids to first-appearance slots, for
// deduplicating the ids of one partition and counting their entries. A cell
// holds 32 bits of the key's hash and its slot; the keys and their counts sit
// in slot order in a dense array owned by the caller. Maps for batches of ~10^4
// ids stay within the L2 cache that way, which matters more than anything else
// here (each insert is a random access). The cells live in per-thread scratch
// that is reused from call to call, so a map costs no page faults once a thread
// has seen a batch of its size.
class SlotMap {
 public:
  struct Cell {
    uint32_t tag;
    int32_t slot;  // -1: empty.
  };

  // A map whose keys go to `keys` (in slot order), sized for `expected`
  // distinct keys at a load of at most 1/2 (it grows beyond that), in the
  // calling thread's scratch number `scratch`. One thread may use a scratch
  // number for one map at a time. `keys` has spare elements at its end until
  // Finish.
  SlotMap(int64_t expected, std::vector<Distinct>* keys, int scratch)
      : scratch_(Scratch(scratch)), keys_(keys) {
    int64_t capacity = 16;
    while (capacity < 2 * expected) capacity <<= 1;
    Reset(capacity);
    keys_->resize(std::max<int64_t>(expected, 1));
    keys_data_ = keys_->data();
    SetLimit();
  }

  SlotMap(const SlotMap&) = delete;
  SlotMap& operator=(const SlotMap&) = delete;

  // Starts loading the cell of `key`, which a later Insert will probe.
  void Prefetch(int64_t key) const {
    __builtin_prefetch(&cells_[Hash(key) & mask_]);
  }

  // The slot of `key`, counting one more entry for it; a new key gets the
  // next slot.
  int64_t Insert(int64_t key) {
    const uint64_t hash = Hash(key);
    const uint32_t tag = static_cast<uint32_t>(hash >> 32);
    uint64_t i = hash & mask_;
    for (; cells_[i].slot >= 0; i = (i + 1) & mask_) {
      if (cells_[i].tag == tag) {
        Distinct& d = keys_data_[cells_[i].slot];
        if (d.key == key) {
          ++d.count;
          return cells_[i].slot;
        }
      }
    }
    // The keys and the map's state sit in plain members rather than behind
    // std::vector::push_back, whose bookkeeping the compiler reloads on
    // every insert.
    const int32_t slot = static_cast<int32_t>(size_++);
    keys_data_[slot] = Distinct{key, 1};
    cells_[i] = Cell{tag, slot};
    if (size_ == limit_) Grow();
    return slot;
  }

  // Drops the spare elements at the end of the keys.
  void Finish() { keys_->resize(size_); }

 private:
  static std::vector<Cell>& Scratch(int index) {
    // A deque, so that growing it keeps the maps in use where they are.
    static thread_local std::deque<std::vector<Cell>> scratch;
    if (static_cast<int>(scratch.size()) <= index) scratch.resize(index + 1);
    return scratch[index];
  }

  static uint64_t Hash(int64_t key) {
    uint64_t h = static_cast<uint64_t>(key) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
  }

  void Reset(int64_t capacity) {
    scratch_.assign(capacity, Cell{0, -1});
    cells_ = scratch_.data();
    mask_ = capacity - 1;
  }

  // Insert calls Grow when the keys run out of spare elements or the cells
  // reach a load of 1/2.
  void SetLimit() {
    limit_ = std::min<int64_t>(keys_->size(), (mask_ + 1) / 2 + 1);
  }

  void Grow() {
    if (size_ == static_cast<int64_t>(keys_->size())) {
      keys_->resize(2 * size_);
      keys_data_ = keys_->data();
    }
    if (2 * size_ > static_cast<int64_t>(mask_ + 1)) {
      Reset(2 * static_cast<int64_t>(mask_ + 1));
      for (int64_t slot = 0; slot < size_; ++slot) {
        const uint64_t hash = Hash(keys_data_[slot].key);
        uint64_t i = hash & mask_;
        while (cells_[i].slot >= 0) i = (i + 1) & mask_;
        cells_[i] =
            Cell{static_cast<uint32_t>(hash >> 32), static_cast<int32_t>(slot)};
      }
    }
    SetLimit();
  }

  std::vector<Cell>& scratch_;
  Cell* cells_ = nullptr;
  uint64_t mask_ = 0;
  std::vector<Distinct>* keys_;
  Distinct* keys_data_ = nullptr;
  int64_t size_ = 0;
  int64_t limit_ = 0;  // Insert calls Grow when size_ reaches it.
};

// How one feature's ids are looked up.
struct PlanOptions {
  int num_partitions = 1;
  Strategy strategy = Strategy::kDiv;
  // >= 0: sp_indices must have this many columns; -1: any rank that
  // OutputRowCount accepts.
  int64_t sparse_rank = -1;
  // Whether the last dimension of the ids is combined (an output row per
  // prod(dense_shape[:-1])) or kept (an output row per id cell).
  bool combine_last = true;
  bool prune_ids = false;      // Drop ids < 0.
  bool prune_weights = false;  // Drop entries whose weight is not > 0.
  bool fill_empty_rows = false;
  int64_t default_id = 0;  // The id filling empty rows.
  // Gather each distinct id of a partition once (else once per entry).
  bool unique = false;
};

// Partition and id within it of `id` (see Strategy), for a dense table of
// `table_rows` rows split as tf.nn.embedding_lookup splits it ('div':
// contiguous blocks, the first table_rows % n blocks one row longer; 'mod':
// round robin), or as partitioned EmbeddingVariables route raw keys.
inline void Route(const PlanOptions& options, int64_t id, int64_t table_rows,
                  int* part, int64_t* local) {
  const int64_t n = options.num_partitions;
  switch (options.strategy) {
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

// Dense tables only hold rows [0, table_rows); EmbeddingVariables take any
// key.
inline bool Bounded(const PlanOptions& options) {
  return options.strategy != Strategy::kEmbeddingVariable;
}

// SlotMap numbers distinct ids with 32 bits.
constexpr int64_t kMaxEntries = INT32_MAX;

// Where the per-entry outputs of a lookup go: each entry's position in the
// concatenated gathered rows, output row, weight and (if not null) source,
// its index in the ids or -1 for an entry that fills an empty row.
template <typename T>
struct EntryOutputs {
  int64_t* positions = nullptr;
  int64_t* rows = nullptr;
  T* weights = nullptr;
  int64_t* sources = nullptr;
};

// Plans one feature's lookup in three passes, so that the op writes its
// outputs in place:
//
//   CountSparse / CountDense validates the ids and counts the entries (ids
//     left after pruning, plus fillers of empty rows), grouped by output row
//     and in input order within a row;
//   Write, with the entry outputs allocated, writes every entry and routes
//     its id to a partition (and a slot there), collecting each partition's
//     ids to gather;
//   WriteIds, with those allocated (gathered(p) ids for partition p), writes
//     them, how many entries read each one, and the entries' final
//     positions.
//
// The loops over the ids are instantiated per id type and routing case, so
// that the common case (rows in order, one partition) runs without
// per-entry branches on the options.
template <typename T>
class LookupPlanner {
 public:
  LookupPlanner(ArgNames names, PlanOptions options)
      : names_(std::move(names)), options_(options) {}

  // Sparse ids (values, indices, dense_shape) with `weights` (null: all 1)
  // in a table of `table_rows` rows (ignored for EmbeddingVariables).
  Status CountSparse(const Tensor& values, const Tensor& indices,
                     const Tensor& dense_shape, const Tensor* weights,
                     int64_t table_rows) {
    table_rows_ = table_rows;
    TF_RETURN_IF_ERROR(RequireVector(names_, values, "sp_values"));
    if (!TensorShapeUtils::IsMatrix(indices.shape())) {
      return errors::InvalidArgument(names_.op(), ": ", names_("sp_indices"),
                                     " must be a matrix, got shape ",
                                     indices.shape().DebugString());
    }
    TF_RETURN_IF_ERROR(
        OutputRowCount(names_, dense_shape, options_.combine_last, &num_rows_));
    const int64_t rank = dense_shape.NumElements();
    if (options_.sparse_rank >= 0 && rank != options_.sparse_rank) {
      return errors::InvalidArgument(
          names_.op(), ": sparse ids must have rank ", options_.sparse_rank,
          ", got ", names_("sp_dense_shape"), " ", ShapeString(dense_shape));
    }
    if (indices.dim_size(1) != rank) {
      return errors::InvalidArgument(names_.op(), ": ", names_("sp_indices"),
                                     " has ", indices.dim_size(1),
                                     " columns but ", names_("sp_dense_shape"),
                                     " has ", rank, " dimensions");
    }
    nnz_ = values.NumElements();
    TF_RETURN_IF_ERROR(CheckEntryCount("sp_values", nnz_));
    TF_RETURN_IF_ERROR(
        RequireLength(names_, indices, "sp_indices", nnz_, "sp_values"));
    if (weights != nullptr) {
      TF_RETURN_IF_ERROR(RequireVector(names_, *weights, "sp_weights"));
      TF_RETURN_IF_ERROR(
          RequireLength(names_, *weights, "sp_weights", nnz_, "sp_values"));
      weights_ = weights->flat<T>().data();
    }
    SetIds(values);
    indices_ = indices.flat<int64_t>().data();
    rank_ = rank;
    row_dims_ = options_.combine_last ? rank - 1 : rank;
    shape_ = dense_shape.flat<int64_t>().data();
    dense_shape_ = &dense_shape;
    return WithIds([&](const auto* ids) { return CountKept(ids); });
  }

  // Dense `ids` (any shape): entry i is id i, weight 1, output row i.
  Status CountDense(const Tensor& ids, int64_t table_rows) {
    table_rows_ = table_rows;
    nnz_ = ids.NumElements();
    TF_RETURN_IF_ERROR(CheckEntryCount("ids", nnz_));
    SetIds(ids);
    dense_ = true;
    num_rows_ = entries_ = nnz_;
    return WithIds([&](const auto* values) -> Status {
      for (int64_t i = 0; i < nnz_; ++i) {
        const int64_t id = static_cast<int64_t>(values[i]);
        if (!IsTableRow(id)) return NotATableRow(id, "ids", i);
      }
      return tensorflow::OkStatus();
    });
  }

  int64_t entries() const { return entries_; }
  int64_t num_rows() const { return num_rows_; }

  void Write(const EntryOutputs<T>& out) {
    const int parts = options_.num_partitions;
    out_ = out;
    ids_.assign(parts, {});
    maps_.clear();
    if (parts > 1) part_.resize(entries_);
    if (options_.unique) {
      // Ids repeat within a batch; expect about half of them to be distinct.
      const int64_t expected = entries_ / parts / 2 + 1;
      for (int p = 0; p < parts; ++p) {
        maps_.push_back(std::make_unique<SlotMap>(expected, &ids_[p], p));
      }
    } else {
      for (int p = 0; p < parts; ++p) ids_[p].reserve(entries_ / parts + 1);
    }
    WithIds([&](const auto* ids) {
      if (options_.unique) {
        parts > 1 ? WriteEntries<true, true>(ids)
                  : WriteEntries<true, false>(ids);
      } else {
        parts > 1 ? WriteEntries<false, true>(ids)
                  : WriteEntries<false, false>(ids);
      }
      return tensorflow::OkStatus();
    }).IgnoreError();
    for (auto& map : maps_) map->Finish();
    maps_.clear();
  }

  int64_t gathered(int p) const { return static_cast<int64_t>(ids_[p].size()); }

  // `ids[p]` (int32 or int64, gathered(p) elements) and, if `counts` is not
  // empty, counts[p] receive partition p's ids and how many entries read
  // each; the entries' positions become global.
  void WriteIds(const std::vector<Tensor*>& ids,
                const std::vector<int64_t*>& counts) {
    const int parts = options_.num_partitions;
    for (int p = 0; p < parts; ++p) {
      const std::vector<Distinct>& d = ids_[p];
      if (ids[p]->dtype() == tensorflow::DT_INT32) {
        int32_t* dst = ids[p]->flat<int32_t>().data();
        for (size_t j = 0; j < d.size(); ++j) {
          dst[j] = static_cast<int32_t>(d[j].key);
        }
      } else {
        int64_t* dst = ids[p]->flat<int64_t>().data();
        for (size_t j = 0; j < d.size(); ++j) dst[j] = d[j].key;
      }
      if (!counts.empty()) {
        for (size_t j = 0; j < d.size(); ++j) counts[p][j] = d[j].count;
      }
    }
    if (parts == 1) return;
    std::vector<int64_t> offset(parts, 0);
    for (int p = 1; p < parts; ++p) offset[p] = offset[p - 1] + gathered(p - 1);
    for (int64_t e = 0; e < entries_; ++e) {
      out_.positions[e] += offset[part_[e]];
    }
  }

 private:
  // How many entries ahead Write loads dedup map cells.
  static constexpr int64_t kAhead = 8;

  void SetIds(const Tensor& ids) {
    if (ids.dtype() == tensorflow::DT_INT32) {
      ids32_ = ids.flat<int32_t>().data();
    } else {
      ids64_ = ids.flat<int64_t>().data();
    }
  }

  // fn(ids) with the ids as a pointer of their own type.
  template <typename Fn>
  Status WithIds(Fn&& fn) {
    return ids64_ != nullptr ? fn(ids64_) : fn(ids32_);
  }

  T Weight(int64_t i) const { return weights_ == nullptr ? T(1) : weights_[i]; }

  bool Keep(int64_t id, T weight) const {
    // Written as !(w > 0) so that NaN weights are pruned too, as
    // tf.nn.safe_embedding_lookup_sparse's greater(w, 0) does.
    return !(options_.prune_ids && id < 0) &&
           !(options_.prune_weights && !(weight > T(0)));
  }

  // The output row of entry i (its indices are known to be in bounds).
  int64_t RowOf(int64_t i) const {
    const int64_t* index = indices_ + i * rank_;
    if (row_dims_ == 1) return index[0];
    int64_t row = 0;
    for (int64_t k = 0; k < row_dims_; ++k) row = row * shape_[k] + index[k];
    return row;
  }

  // Validates the ids and counts the kept entries and the rows they fill,
  // in input order, and whether their rows are in order (sorted_).
  // kOneRowDim is row_dims_ == 1, as for rank-2 ids combined over their last
  // dimension, the common case: an entry's row is then its first index.
  template <bool kOneRowDim, typename Tids>
  Status ScanKept(const Tids* ids, int64_t* kept_entries, int64_t* filled) {
    const int64_t row_dims = kOneRowDim ? 1 : row_dims_;
    // Keep and IsTableRow on locals, which stay in registers (the options
    // themselves were reloaded for every entry).
    const bool prune_ids = options_.prune_ids;
    // Without weights every weight is 1, which pruning keeps.
    const bool prune_weights = options_.prune_weights && weights_ != nullptr;
    const bool bounded = Bounded(options_);
    const uint64_t table_rows = static_cast<uint64_t>(table_rows_);
    bool sorted = true;
    int64_t kept = 0, filled_rows = 0, last_row = -1;
    for (int64_t i = 0; i < nnz_; ++i) {
      const int64_t* index = indices_ + i * rank_;
      int64_t row = 0;  // As RowOf.
      for (int64_t k = 0; k < row_dims; ++k) {
        if (index[k] < 0 || index[k] >= shape_[k]) {
          return errors::InvalidArgument(
              names_.op(), ": ", names_("sp_indices"), "[", i, ", ", k,
              "] = ", index[k], " is out of bounds for ",
              names_("sp_dense_shape"), " ", ShapeString(*dense_shape_));
        }
        row = row * shape_[k] + index[k];
      }
      const int64_t id = static_cast<int64_t>(ids[i]);
      if ((prune_ids && id < 0) || (prune_weights && !(weights_[i] > T(0)))) {
        continue;
      }
      if (bounded && static_cast<uint64_t>(id) >= table_rows) {
        return NotATableRow(id, "sp_values", i);
      }
      sorted &= row >= last_row;
      filled_rows += row != last_row;
      last_row = row;
      ++kept;
    }
    sorted_ = sorted;
    *kept_entries = kept;
    *filled = filled_rows;
    return tensorflow::OkStatus();
  }

  template <typename Tids>
  Status CountKept(const Tids* ids) {
    int64_t kept = 0, filled_rows = 0;
    TF_RETURN_IF_ERROR(row_dims_ == 1
                           ? ScanKept<true>(ids, &kept, &filled_rows)
                           : ScanKept<false>(ids, &kept, &filled_rows));
    if (!sorted_) {
      // Rare (SparseTensors are usually in row-major order): order the kept
      // entries by row once, stably, and count the rows they fill.
      for (int64_t i = 0; i < nnz_; ++i) {
        if (Keep(static_cast<int64_t>(ids[i]), Weight(i))) {
          order_.emplace_back(RowOf(i), i);
        }
      }
      std::stable_sort(
          order_.begin(), order_.end(),
          [](const auto& a, const auto& b) { return a.first < b.first; });
      filled_rows = 0;
      for (size_t j = 0; j < order_.size(); ++j) {
        if (j == 0 || order_[j].first != order_[j - 1].first) ++filled_rows;
      }
    }
    entries_ = kept;
    if (options_.fill_empty_rows) {
      if (!IsTableRow(options_.default_id)) {
        return NotATableRow(options_.default_id, "default_id", -1);
      }
      entries_ += num_rows_ - filled_rows;
    }
    return tensorflow::OkStatus();
  }

  // Writes every entry; kUnique and kMultiPart are the options' `unique`
  // and num_partitions > 1.
  template <bool kUnique, bool kMultiPart, typename Tids>
  void WriteEntries(const Tids* ids) {
    int64_t* const rows = out_.rows;
    T* const weights = out_.weights;
    int64_t* const sources = out_.sources;
    int64_t* const positions = out_.positions;
    SlotMap* const map = kUnique ? maps_[0].get() : nullptr;
    int64_t e = 0;
    auto emit = [&](int64_t row, int64_t id, T weight, int64_t source) {
      rows[e] = row;
      weights[e] = weight;
      if (sources != nullptr) sources[e] = source;
      int p = 0;
      int64_t local = id;
      if (kMultiPart) {
        Route(options_, id, table_rows_, &p, &local);
        part_[e] = p;
      }
      if (kUnique) {
        positions[e] = (kMultiPart ? maps_[p].get() : map)->Insert(local);
      } else {
        positions[e] = static_cast<int64_t>(ids_[p].size());
        ids_[p].push_back(Distinct{local, 1});
      }
      ++e;
    };
    // Starts loading the map cell of the id at input index i.
    auto prefetch = [&](int64_t i) {
      if (kUnique && !kMultiPart && i < nnz_) {
        map->Prefetch(static_cast<int64_t>(ids[i]));
      }
    };
    const bool fill = options_.fill_empty_rows;
    int64_t last_row = -1;
    // Emits the default id for every empty row in (last_row, row).
    auto fill_before = [&](int64_t row) {
      for (int64_t r = last_row + 1; r < row; ++r) {
        emit(r, options_.default_id, T(1), -1);
      }
      if (row > last_row) last_row = row;
    };
    if (dense_) {
      for (int64_t i = 0; i < nnz_; ++i) {
        prefetch(i + kAhead);
        emit(i, static_cast<int64_t>(ids[i]), T(1), i);
      }
    } else if (sorted_) {
      for (int64_t i = 0; i < nnz_; ++i) {
        const int64_t id = static_cast<int64_t>(ids[i]);
        const T weight = Weight(i);
        if (!Keep(id, weight)) continue;
        const int64_t row = RowOf(i);
        if (fill) fill_before(row);
        prefetch(i + kAhead);
        emit(row, id, weight, i);
      }
    } else {
      for (const auto& [row, i] : order_) {
        if (fill) fill_before(row);
        emit(row, static_cast<int64_t>(ids[i]), Weight(i), i);
      }
    }
    if (fill) fill_before(num_rows_);
  }

  bool IsTableRow(int64_t id) const {
    return !Bounded(options_) || (id >= 0 && id < table_rows_);
  }

  Status NotATableRow(int64_t id, const char* what, int64_t index) const {
    const std::string arg =
        index < 0 ? std::string(what)
                  : names_(what) + "[" + std::to_string(index) + "]";
    return errors::InvalidArgument(
        names_.op(), ": ", arg, " = ", id,
        " is not a row of the embedding table: not in [0, ", table_rows_, ")");
  }

  Status CheckEntryCount(const char* arg, int64_t n) const {
    if (n <= kMaxEntries) return tensorflow::OkStatus();
    return errors::InvalidArgument(names_.op(), ": ", names_(arg), " has ", n,
                                   " ids, more than the ", kMaxEntries,
                                   " one lookup supports");
  }

  ArgNames names_;
  PlanOptions options_;
  int64_t table_rows_ = 0;
  // The ids (one of the two) and, for sparse ids, their weights (may be
  // null), indices [nnz, rank] and dense shape.
  const int32_t* ids32_ = nullptr;
  const int64_t* ids64_ = nullptr;
  const T* weights_ = nullptr;
  const int64_t* indices_ = nullptr;
  const int64_t* shape_ = nullptr;
  const Tensor* dense_shape_ = nullptr;
  int64_t nnz_ = 0, rank_ = 0, row_dims_ = 0;
  bool dense_ = false;
  bool sorted_ = true;
  std::vector<std::pair<int64_t, int64_t>> order_;  // (row, index) if !sorted_.
  int64_t num_rows_ = 0;
  int64_t entries_ = 0;
  // Write's state.
  EntryOutputs<T> out_;
  std::vector<std::unique_ptr<SlotMap>> maps_;  // Per partition, in Write.
  std::vector<std::vector<Distinct>> ids_;      // Per partition.
  std::vector<int> part_;  // Per entry, with more than one partition.
};

// The gathered rows (concatenated over a table's partitions) seen by the
// post-lookup ops. One partition (the common case) needs no row table.
template <typename T>
class GatheredRows {
 public:
  const T* operator[](int64_t u) const {
    return row_.empty() ? base_ + u * dim_ : row_[u];
  }
  int64_t size() const { return size_; }
  int64_t dim() const { return dim_; }

  // Collects shards[begin, begin + count), the rows gathered from one
  // table's partitions.
  Status Collect(const ArgNames& names, const OpInputList& shards, int begin,
                 int count) {
    for (int p = begin; p < begin + count; ++p) {
      const Tensor& shard = shards[p];
      if (!TensorShapeUtils::IsMatrix(shard.shape())) {
        return errors::InvalidArgument(names.op(), ": emb_shards[", p,
                                       "] must be a matrix, got shape ",
                                       shard.shape().DebugString());
      }
      if (p == begin) dim_ = shard.dim_size(1);
      if (shard.dim_size(1) != dim_) {
        return errors::InvalidArgument(
            names.op(), ": emb_shards[", p, "] has ", shard.dim_size(1),
            " columns but emb_shards[", begin, "] has ", dim_);
      }
      size_ += shard.dim_size(0);
    }
    base_ = shards[begin].flat<T>().data();
    if (count == 1) return tensorflow::OkStatus();
    row_.reserve(size_);
    for (int p = begin; p < begin + count; ++p) {
      const T* data = shards[p].flat<T>().data();
      const int64_t rows = shards[p].dim_size(0);
      for (int64_t r = 0; r < rows; ++r) row_.push_back(data + r * dim_);
    }
    return tensorflow::OkStatus();
  }

 private:
  const T* base_ = nullptr;
  std::vector<const T*> row_;  // Row u starts at row_[u]; empty: base_.
  int64_t size_ = 0;
  int64_t dim_ = -1;
};

// Where the gradients of a table's gathered rows go: the rows of its
// partitions' gradient tensors, concatenated.
template <typename T>
class GradientRows {
 public:
  GradientRows(const std::vector<Tensor*>& grads, int64_t dim) : dim_(dim) {
    base_ = grads[0]->flat<T>().data();
    if (grads.size() == 1) return;
    for (Tensor* t : grads) {
      T* data = t->flat<T>().data();
      const int64_t rows = t->dim_size(0);
      for (int64_t r = 0; r < rows; ++r) row_.push_back(data + r * dim_);
    }
  }

  T* operator()(int64_t u) const {
    return row_.empty() ? base_ + u * dim_ : row_[u];
  }

 private:
  T* base_ = nullptr;
  std::vector<T*> row_;  // Empty: one partition, rows from base_.
  int64_t dim_;
};

// How many row ranges Combination::Gradient splits a table's gathered rows
// into for `threads` threads: each range scans all the entries, so only
// tables with enough work per entry get more than one.
inline int64_t GradientSplits(int64_t gathered, int64_t entries, int64_t dim,
                              int threads) {
  const int64_t work = entries * dim;
  const int64_t splits = std::min<int64_t>(threads, work / (8 * entries + 1));
  return std::max<int64_t>(1, std::min(splits, gathered));
}

// Validates the shapes of the entry tensors of a post-lookup op.
inline Status CheckEntryShapes(const ArgNames& names, const Tensor& positions,
                               const Tensor& rows, const Tensor& weights) {
  TF_RETURN_IF_ERROR(RequireVector(names, positions, "positions"));
  TF_RETURN_IF_ERROR(RequireVector(names, rows, "rows"));
  TF_RETURN_IF_ERROR(RequireVector(names, weights, "weights"));
  const int64_t n = positions.NumElements();
  TF_RETURN_IF_ERROR(RequireLength(names, rows, "rows", n, "positions"));
  return RequireLength(names, weights, "weights", n, "positions");
}

// Validates the entry tensors of a post-lookup op: their shapes, every
// position, then every row.
inline Status CheckEntries(const ArgNames& names, const Tensor& positions,
                           const Tensor& rows, const Tensor& weights,
                           int64_t num_gathered, int64_t num_rows) {
  TF_RETURN_IF_ERROR(CheckEntryShapes(names, positions, rows, weights));
  TF_RETURN_IF_ERROR(CheckRange(names, positions, "positions", num_gathered,
                                "rows of emb_shards"));
  return CheckRange(names, rows, "rows", num_rows, "output rows");
}

// Checks that `t` (input `arg`) has shape [rows, dim].
inline Status CheckRowsByDim(const ArgNames& names, const Tensor& t,
                             const char* arg, int64_t dim) {
  if (TensorShapeUtils::IsMatrix(t.shape()) && t.dim_size(1) == dim) {
    return tensorflow::OkStatus();
  }
  return errors::InvalidArgument(names.op(), ": ", names(arg),
                                 " must have shape [rows, ", dim, "], got ",
                                 t.shape().DebugString());
}

// The row arithmetic of Combination is written once on GCC vectors of
// kBytes bytes and compiled twice: for the build's baseline (SSE2, 16-byte
// vectors) and for AVX2 with FMA (32-byte vectors), picked at run time by
// UseAvx2, so that the library still runs on CPUs without AVX2. Only inlined
// code takes on the target of the function it is inlined into, hence
// DEEPREC_ROW_INLINE on everything the two variants call (and
// DEEPREC_ROW_LAMBDA on the lambdas they pass on). The AVX2 variant
// contracts y + a * x into one FMA, rounded once: results differ from the
// SSE2 variant's in the last bits, and still not with the thread count.
#define DEEPREC_ROW_INLINE inline __attribute__((always_inline))
#define DEEPREC_ROW_LAMBDA __attribute__((always_inline))

inline bool UseAvx2() {
  static const bool avx2 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return avx2;
}

// Rows of kVecs vectors of kBytes bytes (kVecs == 0: rows of any length, in
// scalar loops that the compiler vectorizes as it can).
template <typename T, int kBytes, int kVecs>
struct RowOps {
  typedef T Vec __attribute__((vector_size(kBytes)));
  // A Vec within a row: at any alignment, and aliasing T (as GCC's own
  // __m256_u). Only references to vectors pass between functions: passing
  // them by value would differ between the SSE2 and AVX2 ABIs.
  typedef T InRow
      __attribute__((vector_size(kBytes), aligned(alignof(T)), may_alias));
  static constexpr int kLanes = kBytes / sizeof(T);

  // Vector v of the row at p.
  static DEEPREC_ROW_INLINE const InRow& At(const T* p, int v) {
    return *reinterpret_cast<const InRow*>(p + v * kLanes);
  }
  static DEEPREC_ROW_INLINE InRow& At(T* p, int v) {
    return *reinterpret_cast<InRow*>(p + v * kLanes);
  }

  // y = a * x if `first`, else y += a * x, over d elements.
  static DEEPREC_ROW_INLINE void Axpy(int64_t d, T a, const T* x, T* y,
                                      bool first) {
    if (kVecs == 0) {
      if (first) {
        for (int64_t k = 0; k < d; ++k) y[k] = a * x[k];
      } else {
        for (int64_t k = 0; k < d; ++k) y[k] += a * x[k];
      }
      return;
    }
    // Adds zeros rather than y for a first write: a branch on `first` would
    // be mispredicted about as often as not in Combination::Gradient.
    const T* const addends[2] = {y, kZeros};
    const T* from = addends[first];
    for (int v = 0; v < kVecs; ++v) At(y, v) = a * At(x, v) + At(from, v);
  }

 private:
  alignas(64) static constexpr T kZeros[kVecs == 0 ? 1 : kVecs * kLanes] = {};
};

// How many kBytes vectors make a row of d elements, for the row lengths that
// have a kernel of their own; 0 for the others.
template <typename T>
int RowVecs(int64_t d, int bytes) {
  const int64_t row_bytes = d * static_cast<int64_t>(sizeof(T));
  if (row_bytes % bytes != 0) return 0;
  const int64_t vecs = row_bytes / bytes;
  return vecs == 1 || vecs == 2 || vecs == 4 || vecs == 8 || vecs == 16
             ? static_cast<int>(vecs)
             : 0;
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

// One feature's combination: the gathered rows, the validated entries
// (positions, rows, weights) and what the combiner derives from them.
template <typename T>
struct Combination {
  GatheredRows<T> gathered;
  int64_t n = 0;  // Entries.
  const int64_t* positions = nullptr;
  const int64_t* rows = nullptr;
  const T* weights = nullptr;
  int64_t num_rows = 0;  // Output rows.
  Combiner combiner = Combiner::kMean;
  T max_norm = 0;        // <= 0: no clipping.
  std::vector<T> norm;   // Per output row, the divisor (0: the row is zero).
  std::vector<T> scale;  // Per gathered row, its clipping factor.

  int64_t dim() const { return gathered.dim(); }
  bool clipped() const { return max_norm > T(0); }

  // Validates the entries and computes the row norms (and clipping scales
  // when `with_scales`).
  Status Init(const ArgNames& names, const Tensor& positions_t,
              const Tensor& rows_t, const Tensor& weights_t,
              int64_t output_rows, bool with_scales) {
    num_rows = output_rows;
    TF_RETURN_IF_ERROR(CheckEntryShapes(names, positions_t, rows_t, weights_t));
    n = positions_t.NumElements();
    positions = positions_t.flat<int64_t>().data();
    rows = rows_t.flat<int64_t>().data();
    weights = weights_t.flat<T>().data();
    norm.assign(num_rows, T(combiner == Combiner::kSum ? 1 : 0));
    bool in_range = false;
    switch (combiner) {
      case Combiner::kSum:
        in_range = ScanEntries<Combiner::kSum>();
        break;
      case Combiner::kMean:
        in_range = ScanEntries<Combiner::kMean>();
        break;
      case Combiner::kSqrtn:
        in_range = ScanEntries<Combiner::kSqrtn>();
        for (T& v : norm) v = std::sqrt(v);
        break;
    }
    if (!in_range) {
      // Names the first bad position, else the first bad row.
      return CheckEntries(names, positions_t, rows_t, weights_t,
                          gathered.size(), num_rows);
    }
    if (with_scales && clipped()) {
      scale.resize(gathered.size());
      T length;
      for (size_t u = 0; u < scale.size(); ++u) {
        ClipScale(gathered[u], dim(), max_norm, &scale[u], &length);
      }
    }
    return tensorflow::OkStatus();
  }

  // Output rows [lo, hi) of the combination, into out (row-major, dim
  // columns). `by_row` groups the entries by output row.
  void Combine(const Groups& by_row, int64_t lo, int64_t hi, T* out) const {
    if (UseAvx2()) {
      CombineAvx2(by_row, lo, hi, out);
    } else {
      CombineWith<16>(by_row, lo, hi, out);
    }
  }

  // Gradients of gathered rows [lo, hi), given top_grad, the gradient of
  // the combined output; grad_row(u) is where row u's goes. Scans all the
  // entries and adds those that read a row in range, in input order, so a
  // few ranges split the work without sorting the entries.
  template <typename GradRow>
  void Gradient(const T* top_grad, int64_t lo, int64_t hi,
                const GradRow& grad_row) const {
    if (UseAvx2()) {
      GradientAvx2(top_grad, lo, hi, grad_row);
    } else {
      GradientWith<16>(top_grad, lo, hi, grad_row);
    }
    if (clipped()) {
      for (int64_t u = lo; u < hi; ++u) ClipGradient(gathered[u], grad_row(u));
    }
  }

  // Gradients of the weights of entries [lo, hi), given top_grad and the
  // combined output `embeddings`.
  void WeightsGradient(const T* top_grad, const T* embeddings, int64_t lo,
                       int64_t hi, T* out) const {
    const int64_t d = dim();
    // With y = S / N, S = sum_i w_i c_i (c_i the clipped rows): dy/dw_i is
    // c_i / N - y (dN/dw_i) / N, where dN/dw_i is 0 ('sum'), 1 ('mean') or
    // w_i / N ('sqrtn').
    for (int64_t e = lo; e < hi; ++e) {
      const int64_t r = rows[e];
      const T row_norm = norm[r];
      out[e] = 0;
      if (row_norm == T(0)) continue;
      const T* x = gathered[positions[e]];
      const T* dy = top_grad + r * d;
      T scale_e = 1, length;
      if (clipped()) ClipScale(x, d, max_norm, &scale_e, &length);
      T dy_c = 0, dy_y = 0;
      for (int64_t k = 0; k < d; ++k) {
        dy_c += dy[k] * x[k] * scale_e;
        dy_y += dy[k] * embeddings[r * d + k];
      }
      switch (combiner) {
        case Combiner::kSum:
          out[e] = dy_c;
          break;
        case Combiner::kMean:
          out[e] = (dy_c - dy_y) / row_norm;
          break;
        case Combiner::kSqrtn:
          out[e] = dy_c / row_norm - dy_y * weights[e] / (row_norm * row_norm);
          break;
      }
    }
  }

 private:
  // Whether every entry's position and row are in range, checked in the
  // pass that sums the row norms ('mean', 'sqrtn'). Runs of entries with
  // the same row (the planner groups them so) sum in a register, and still
  // in input order.
  template <Combiner kCombiner>
  bool ScanEntries() {
    const uint64_t num_gathered = static_cast<uint64_t>(gathered.size());
    int64_t row = -1;  // The row whose norm `sum` holds.
    T sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = rows[i];
      if ((static_cast<uint64_t>(positions[i]) >= num_gathered) |
          (static_cast<uint64_t>(r) >= static_cast<uint64_t>(num_rows))) {
        return false;
      }
      if (kCombiner == Combiner::kSum) continue;
      if (r != row) {
        if (row >= 0) norm[row] = sum;
        row = r;
        sum = norm[r];
      }
      sum +=
          kCombiner == Combiner::kMean ? weights[i] : weights[i] * weights[i];
    }
    if (row >= 0) norm[row] = sum;
    return true;
  }

  __attribute__((target("avx2,fma"))) void CombineAvx2(const Groups& by_row,
                                                       int64_t lo, int64_t hi,
                                                       T* out) const {
    CombineWith<32>(by_row, lo, hi, out);
  }

  // fn(std::integral_constant<int, kVecs>) for this table's rows: kVecs
  // vectors of kBytes bytes, or 0 for dims without a kernel of their own.
  template <int kBytes, typename Fn>
  DEEPREC_ROW_INLINE void WithRowVecs(Fn&& fn) const {
    switch (RowVecs<T>(dim(), kBytes)) {
      case 1:
        return fn(std::integral_constant<int, 1>());
      case 2:
        return fn(std::integral_constant<int, 2>());
      case 4:
        return fn(std::integral_constant<int, 4>());
      case 8:
        return fn(std::integral_constant<int, 8>());
      case 16:
        return fn(std::integral_constant<int, 16>());
      default:
        return fn(std::integral_constant<int, 0>());
    }
  }

  template <int kBytes>
  DEEPREC_ROW_INLINE void CombineWith(const Groups& by_row, int64_t lo,
                                      int64_t hi, T* out) const {
    WithRowVecs<kBytes>([&](auto vecs) DEEPREC_ROW_LAMBDA {
      CombineRange<kBytes, decltype(vecs)::value>(by_row, lo, hi, out);
    });
  }

  // Combine with rows of kVecs vectors (0: any dim). A row's sums stay in
  // registers and are stored once, in blocks of at most 8 vectors (which
  // leaves registers for the rows being added).
  template <int kBytes, int kVecs>
  DEEPREC_ROW_INLINE void CombineRange(const Groups& by_row, int64_t lo,
                                       int64_t hi, T* out) const {
    using Row = RowOps<T, kBytes, kVecs>;
    constexpr int kLanes = Row::kLanes;
    constexpr int kBlock = kVecs == 0 ? 1 : std::min(kVecs, 8);
    const int64_t d = dim();
    const bool in_order = by_row.order.empty();
    for (int64_t r = lo; r < hi; ++r) {
      T* dst = out + r * d;
      const bool zero = norm[r] == T(0);  // div_no_nan, as TF's combiners.
      if (kVecs == 0) {
        std::fill(dst, dst + d, T(0));
        if (zero) continue;
        for (int64_t j = by_row.start[r]; j < by_row.start[r + 1]; ++j) {
          const int64_t e = in_order ? j : by_row.order[j];
          Row::Axpy(d, EntryScale(e), gathered[positions[e]], dst, false);
        }
        if (combiner != Combiner::kSum) {
          for (int64_t k = 0; k < d; ++k) dst[k] /= norm[r];
        }
        continue;
      }
      for (int b = 0; b < kVecs; b += kBlock) {
        typename Row::Vec sum[kBlock] = {};
        for (int64_t j = by_row.start[r]; !zero && j < by_row.start[r + 1];
             ++j) {
          const int64_t e = in_order ? j : by_row.order[j];
          const T s = EntryScale(e);
          const T* x = gathered[positions[e]] + b * kLanes;
          for (int v = 0; v < kBlock; ++v) sum[v] += s * Row::At(x, v);
        }
        if (!zero && combiner != Combiner::kSum) {
          for (int v = 0; v < kBlock; ++v) sum[v] /= norm[r];
        }
        for (int v = 0; v < kBlock; ++v) Row::At(dst, b + v) = sum[v];
      }
    }
  }

  // Entry e's weight, times its gathered row's clipping factor if any.
  T EntryScale(int64_t e) const {
    return scale.empty() ? weights[e] : weights[e] * scale[positions[e]];
  }

  template <typename GradRow>
  __attribute__((target("avx2,fma"))) void GradientAvx2(
      const T* top_grad, int64_t lo, int64_t hi,
      const GradRow& grad_row) const {
    GradientWith<32>(top_grad, lo, hi, grad_row);
  }

  template <int kBytes, typename GradRow>
  DEEPREC_ROW_INLINE void GradientWith(const T* top_grad, int64_t lo,
                                       int64_t hi,
                                       const GradRow& grad_row) const {
    WithRowVecs<kBytes>([&](auto vecs) DEEPREC_ROW_LAMBDA {
      GradientRange<kBytes, decltype(vecs)::value>(top_grad, lo, hi, grad_row);
    });
  }

  // Gradient (without clipping) with rows of kVecs vectors (0: any dim).
  // A row's first entry writes it rather than adding to zeros (which would
  // take one more pass over the rows): rows [lo, next) hold a value, the
  // others are untouched. An entry past `next` zeroes the rows it skips,
  // which no entry has read so far: none when rows are numbered in order of
  // first use, as the planner numbers them.
  template <int kBytes, int kVecs, typename GradRow>
  DEEPREC_ROW_INLINE void GradientRange(const T* top_grad, int64_t lo,
                                        int64_t hi,
                                        const GradRow& grad_row) const {
    using Row = RowOps<T, kBytes, kVecs>;
    const int64_t d = dim();
    int64_t next = lo;
    for (int64_t e = 0; e < n; ++e) {
      const int64_t u = positions[e];
      if (u < lo || u >= hi) continue;
      const T row_norm = norm[rows[e]];
      if (row_norm == T(0)) continue;
      const T s =
          combiner == Combiner::kSum ? weights[e] : weights[e] / row_norm;
      if (__builtin_expect(u > next, 0)) {
        for (; next < u; ++next) {
          std::fill(grad_row(next), grad_row(next) + d, T(0));
        }
      }
      Row::Axpy(d, s, top_grad + rows[e] * d, grad_row(u), u == next);
      next = std::max(next, u + 1);
    }
    for (; next < hi; ++next) {
      std::fill(grad_row(next), grad_row(next) + d, T(0));
    }
  }

  // Turns g = dL/dy into dL/dx for y = x * max_norm / max(|x|, max_norm):
  // identity inside the ball, and for |x| > max_norm the Jacobian
  // (max_norm / |x|) (I - x x^T / |x|^2), which removes g's radial part.
  void ClipGradient(const T* x, T* g) const {
    const int64_t d = dim();
    T s, length;
    ClipScale(x, d, max_norm, &s, &length);
    if (!(length > max_norm)) return;
    T dot = 0;
    for (int64_t k = 0; k < d; ++k) dot += x[k] * g[k];
    const T radial = dot / (length * length);
    for (int64_t k = 0; k < d; ++k) g[k] = s * (g[k] - x[k] * radial);
  }
};

}  // namespace lookup
}  // namespace deeprec

#endif  // DEEPREC_OPS_EMBEDDING_LOOKUP_KERNELS_H_
