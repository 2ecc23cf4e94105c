// EmbeddingTable: the storage engine behind an EmbeddingVariable.
//
// A concurrent hash table from int64/int32 ids to one record per id:
//
//   [ freq : int64 | version : int64 | column 0 (value) | column 1 | ... ]
//
// Column 0 is the embedding, columns 1.. are optimizer slots, each `dim`
// floats, so one key lookup serves the embedding and every slot. A new key
// takes row `floormod(key, default_value_dim)` of each column's default-value
// matrix. This file has no TensorFlow dependency.
//
// Concurrency: the table is split into kNumShards shards chosen by the high
// bits of the mixed key; each shard has a reader/writer lock guarding its key
// index and records. Lookups take the shard lock shared, inserts and updates
// take it exclusive, and whole-table operations (export, import, adding a
// column) take every shard lock in shard order, so an export is a consistent
// snapshot of values and slots.
#ifndef DEEPREC_EMBEDDING_EMBEDDING_TABLE_H_
#define DEEPREC_EMBEDDING_EMBEDDING_TABLE_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "csrc/embedding/admission.h"
#include "csrc/embedding/key_index.h"

namespace deeprec {
namespace embedding {

// Checkpoints group records by this bucket (DeepRec's `key mod 1000`), and
// partitioned variables route a key to shard `Bucket(key) % num_shards`.
constexpr int64_t kNumBuckets = 1000;

template <typename K>
inline int64_t Bucket(K key) {
  const int64_t r = static_cast<int64_t>(key) % kNumBuckets;
  return r < 0 ? r + kNumBuckets : r;
}

// Mutable view of one record, handed to update functions.
class RecordView {
 public:
  RecordView(int64_t* header, int64_t dim) : header_(header), dim_(dim) {}
  float* column(int c) const {
    return reinterpret_cast<float*>(header_ + 2) + c * dim_;
  }
  int64_t& version() const { return header_[1]; }

 private:
  int64_t* header_;
  int64_t dim_;
};

// Admission and eviction settings, fixed when a table is created.
struct TablePolicy {
  AdmissionPolicy admission;
  // Eviction removes ids whose last update is more than `steps_to_live`
  // global steps old (< 0: off), or whose value's L2 norm is below
  // `l2_weight_threshold` (< 0: off).
  int64_t steps_to_live = -1;
  float l2_weight_threshold = -1.0f;
};

template <typename K>
class EmbeddingTable {
 public:
  static constexpr int kShardBits = 6;
  static constexpr int kNumShards = 1 << kShardBits;
  // Records are allocated in chunks so that growing never moves a record.
  static constexpr int64_t kChunkRecords = 256;

  // `default_values` is row-major [default_value_dim, dim].
  EmbeddingTable(int64_t dim, int64_t default_value_dim,
                 std::vector<float> default_values, TablePolicy policy = {})
      : dim_(dim), default_value_dim_(default_value_dim), policy_(policy) {
    if (dim <= 0) {
      throw std::invalid_argument("embedding dim must be positive, got " +
                                  std::to_string(dim));
    }
    CheckDefaults(default_values);
    defaults_.push_back(std::move(default_values));
    record_words_ = RecordWords(1);
    for (Shard& shard : shards_)
      shard.pending.Init(policy.admission, kNumShards);
  }

  EmbeddingTable(const EmbeddingTable&) = delete;
  EmbeddingTable& operator=(const EmbeddingTable&) = delete;

  int64_t dim() const { return dim_; }
  int64_t default_value_dim() const { return default_value_dim_; }

  int num_columns() const {
    AllLocks<std::shared_lock<std::shared_mutex>> lock(this);
    return static_cast<int>(defaults_.size());
  }

  // Adds an optimizer-slot column whose new-key values come from
  // `default_values` ([default_value_dim, dim]). Existing records get their
  // default row in the new column. Returns the column index (>= 1).
  int AddColumn(std::vector<float> default_values) {
    CheckDefaults(default_values);
    AllLocks<std::unique_lock<std::shared_mutex>> lock(this);
    const int old_columns = static_cast<int>(defaults_.size());
    defaults_.push_back(std::move(default_values));
    const int64_t old_words = record_words_;
    record_words_ = RecordWords(old_columns + 1);
    for (Shard& shard : shards_) {
      std::vector<std::unique_ptr<int64_t[]>> old_chunks =
          std::move(shard.chunks);
      shard.chunks.clear();
      for (size_t c = 0; c < old_chunks.size(); ++c) {
        shard.chunks.emplace_back(new int64_t[kChunkRecords * record_words_]);
      }
      shard.index.ForEach([&](K key, uint32_t idx) {
        const int64_t* from = old_chunks[idx / kChunkRecords].get() +
                              (idx % kChunkRecords) * old_words;
        int64_t* to = RecordPtr(shard, idx);
        std::memcpy(to, from, old_words * sizeof(int64_t));
        FillColumn(RecordView(to, dim_), old_columns, key);
      });
    }
    return old_columns;
  }

  int64_t size() const {
    int64_t total = 0;
    for (const Shard& shard : shards_) {
      std::shared_lock<std::shared_mutex> lock(shard.mu);
      total += shard.index.size();
    }
    return total;
  }

  // Bytes held by indices, record chunks and ids waiting for admission
  // (excluding default matrices).
  int64_t MemoryBytes() const {
    int64_t total = 0;
    for (const Shard& shard : shards_) {
      std::shared_lock<std::shared_mutex> lock(shard.mu);
      total += shard.index.bytes() + shard.pending.bytes() +
               static_cast<int64_t>(shard.chunks.size()) * kChunkRecords *
                   record_words_ * static_cast<int64_t>(sizeof(int64_t));
    }
    return total;
  }

  // Runs fn(begin, end) over task indices [0, tasks), possibly in parallel;
  // batch operations use it to process shards concurrently.
  using Runner = std::function<void(
      int64_t tasks, const std::function<void(int64_t, int64_t)>& fn)>;

  static void RunSerially(int64_t tasks,
                          const std::function<void(int64_t, int64_t)>& fn) {
    fn(0, tasks);
  }

  // Training lookup: writes column 0 of each key to out[i*dim]. Missing keys
  // are inserted with their default rows. With `count_freq` every occurrence
  // adds one to the key's frequency.
  void LookupOrInsert(const K* keys, int64_t n, float* out, bool count_freq,
                      const Runner& run = RunSerially) {
    LookupOrInsertImpl(keys, n, out, nullptr, count_freq ? 1 : 0, run);
  }

  // LookupOrInsert of distinct keys, each standing for counts[i] occurrences:
  // key i's frequency grows by counts[i], and admission judges it as if
  // LookupOrInsert had seen the key counts[i] times in one batch. Callers
  // that deduplicate a batch touch each record once instead of once per
  // occurrence.
  void LookupOrInsertCounted(const K* keys, const int64_t* counts, int64_t n,
                             float* out, const Runner& run = RunSerially) {
    LookupOrInsertImpl(keys, n, out, counts, 0, run);
  }

  // Read-only lookup of `column`; a missing key reads that column's default
  // row. Never inserts.
  void Find(const K* keys, int64_t n, int column, float* out,
            const Runner& run = RunSerially) const {
    {
      std::shared_lock<std::shared_mutex> lock(shards_[0].mu);
      CheckColumn(column);
    }
    const Batch batch = Group(keys, n, ColumnBytes(column));
    std::vector<uint32_t> found_all(n);
    ForEachShard(
        batch, run, [&](const Shard& shard, const int64_t* pos, int64_t m) {
          uint32_t* found = ShardSlice(batch, pos, found_all);
          std::shared_lock<std::shared_mutex> lock(shard.mu);
          FindAll(shard, keys, batch, pos, m, out, found);
          for (int64_t j = 0; j < m; ++j) {
            float* dst = out + pos[j] * dim_;
            if (found[j] != KeyIndex<K>::kEmpty) {
              const RecordView record(RecordPtr(shard, found[j]), dim_);
              std::memcpy(dst, record.column(column), dim_ * sizeof(float));
            } else if (column == 0 && policy_.admission.enabled()) {
              std::fill_n(dst, dim_, policy_.admission.no_permission_value);
            } else {
              std::memcpy(dst, DefaultRow(column, keys[pos[j]]),
                          dim_ * sizeof(float));
            }
          }
        });
  }

  // Sums the gradient rows (`grads`, [n, dim]) of equal keys, then calls
  // fn(RecordView, summed_grad) once per distinct key under its shard's
  // exclusive lock, inserting missing keys first. When version >= 0 it
  // becomes each updated record's version after fn ran, so fn still sees the
  // step of the record's previous update (-1 for none). Duplicates are
  // summed in batch order, as TensorFlow's sparse optimizers do before
  // applying.
  template <typename Fn>
  void ApplyGradients(const K* keys, int64_t n, const float* grads,
                      int64_t version, Fn&& fn,
                      const Runner& run = RunSerially) {
    // The whole record, slots included, for fn.
    const int64_t record_bytes = record_words_ * sizeof(int64_t);
    const Batch batch = Group(keys, n, {0, record_bytes});
    ForEachShard(batch, run, [&](Shard& shard, const int64_t* pos, int64_t m) {
      std::unique_lock<std::shared_mutex> lock(shard.mu);
      RowSums& sums = RowSums::ForThisThread(m, dim_);
      for (int64_t j = 0; j < m; ++j) {
        if (!batch.preload && j + kPrefetch < m) {
          shard.index.Prefetch(batch.hash[pos[j + kPrefetch]]);
        }
        const int64_t i = pos[j];
        // With admission, ids not yet admitted receive no updates.
        const uint32_t idx =
            policy_.admission.enabled()
                ? shard.index.Find(keys[i], batch.hash[i])
                : FindOrInsertLocked(shard, keys[i], batch.hash[i]);
        if (idx == KeyIndex<K>::kEmpty) continue;
        if (!batch.preload) {
          PrefetchLines<kRead>(RecordPtr(shard, idx), 0, record_bytes);
        }
        // fn reads the key's gradient row after the shard's keys are found.
        // The rows come in batch order, not shard order, so the hardware
        // prefetcher does not fetch them: a group lookup's gradients for
        // ten tables (~12 MB) are gone from L2 by then, and this took its
        // updates from 31.5 to 23.9 ms per step (embedding_lookups.py,
        // grouped/10, one thread).
        PrefetchLines<kRead>(grads + i * dim_, 0, dim_ * sizeof(float));
        sums.Add(idx, grads + i * dim_);
      }
      for (size_t r = 0; r < sums.records.size(); ++r) {
        RecordView record(RecordPtr(shard, sums.records[r]), dim_);
        fn(record, sums.row(r));
        if (version >= 0) record.version() = version;
      }
    });
  }

  // Frequency of each key: counted lookups, for admitted and not yet
  // admitted ids alike (0 when never seen).
  void GetFrequency(const K* keys, int64_t n, int64_t* out) const {
    ReadHeader(keys, n, out, 0, [](const Shard& shard, K key, uint64_t hash) {
      return shard.pending.Frequency(key, hash);
    });
  }

  // Global step of each key's last update (-1 when absent or never updated).
  void GetVersion(const K* keys, int64_t n, int64_t* out) const {
    ReadHeader(keys, n, out, 1, [](const Shard& shard, K key, uint64_t hash) {
      return shard.pending.Version(key, hash);
    });
  }

  struct Stats {
    int64_t admitted = 0;      // ids with an embedding
    int64_t filtered = 0;      // ids counted but not admitted (exact filter)
    int64_t last_evicted = 0;  // ids removed by the latest Evict
  };

  Stats GetStats() const {
    Stats stats;
    for (const Shard& shard : shards_) {
      std::shared_lock<std::shared_mutex> lock(shard.mu);
      stats.admitted += shard.index.size();
      stats.filtered += shard.pending.size();
    }
    stats.last_evicted = last_evicted_.load(std::memory_order_relaxed);
    return stats;
  }

  // Applies the eviction policy: removes admitted ids (and their slots)
  // last updated more than steps_to_live steps before `global_step` (when
  // it is >= 0), or whose value has an L2 norm below the threshold. Returns
  // the number removed.
  int64_t Evict(int64_t global_step) {
    AllLocks<std::unique_lock<std::shared_mutex>> lock(this);
    int64_t removed = 0;
    for (Shard& shard : shards_) {
      std::vector<K> stale;
      shard.index.ForEach([&](K key, uint32_t idx) {
        if (ShouldEvict(RecordPtr(shard, idx), global_step))
          stale.push_back(key);
      });
      for (K key : stale) EraseLocked(shard, key);
      removed += static_cast<int64_t>(stale.size());
    }
    last_evicted_.store(removed, std::memory_order_relaxed);
    return removed;
  }

  // Calls fn(i, RecordView) for each keys[i] under its shard's exclusive
  // lock, inserting missing keys first. When version >= 0 it becomes the
  // record's version.
  template <typename Fn>
  void Update(const K* keys, int64_t n, int64_t version, Fn&& fn) {
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t hash = MixKey(static_cast<uint64_t>(keys[i]));
      Shard& shard = ShardFor(hash);
      std::unique_lock<std::shared_mutex> lock(shard.mu);
      const uint32_t idx = FindOrInsertLocked(shard, keys[i], hash);
      RecordView record(RecordPtr(shard, idx), dim_);
      if (version >= 0) record.version() = version;
      fn(i, record);
    }
  }

  // Destination of an export, sized by the caller once the counts are known.
  struct ExportBuffers {
    K* keys = nullptr;
    int64_t* freqs = nullptr;     // may be null
    int64_t* versions = nullptr;  // may be null
    std::vector<float*> columns;  // one [n, dim] buffer per requested column
    // Ids counted but not admitted by an exact filter; may be null.
    K* keys_filtered = nullptr;
    int64_t* freqs_filtered = nullptr;
    int64_t* versions_filtered = nullptr;
  };

  // Consistent snapshot of the table, ordered by Bucket(key). `alloc(n,
  // n_filtered)` receives the number of admitted and of not-admitted ids.
  // `bucket_offsets` (kNumBuckets + 1 entries) receives, for each bucket b,
  // the first admitted row of b; the last entry is the row count.
  // `filter_offsets` (may be null) is the same for the not-admitted ids.
  void Export(const std::vector<int>& columns,
              const std::function<ExportBuffers(int64_t, int64_t)>& alloc,
              int64_t* bucket_offsets,
              int64_t* filter_offsets = nullptr) const {
    AllLocks<std::shared_lock<std::shared_mutex>> lock(this);
    for (int c : columns) CheckColumn(c);
    std::vector<int64_t> start(kNumBuckets + 1, 0);
    std::vector<int64_t> filtered_start(kNumBuckets + 1, 0);
    for (const Shard& shard : shards_) {
      shard.index.ForEach([&](K key, uint32_t) { ++start[Bucket(key) + 1]; });
      shard.pending.ForEach(
          [&](K key, int64_t, int64_t) { ++filtered_start[Bucket(key) + 1]; });
    }
    for (int64_t b = 0; b < kNumBuckets; ++b) {
      start[b + 1] += start[b];
      filtered_start[b + 1] += filtered_start[b];
    }
    std::copy(start.begin(), start.end(), bucket_offsets);
    if (filter_offsets) {
      std::copy(filtered_start.begin(), filtered_start.end(), filter_offsets);
    }
    ExportBuffers out = alloc(start[kNumBuckets], filtered_start[kNumBuckets]);
    for (const Shard& shard : shards_) {
      shard.index.ForEach([&](K key, uint32_t idx) {
        const int64_t row = start[Bucket(key)]++;
        int64_t* header = RecordPtr(shard, idx);
        out.keys[row] = key;
        if (out.freqs) {
          out.freqs[row] = __atomic_load_n(header, __ATOMIC_RELAXED);
        }
        if (out.versions) out.versions[row] = header[1];
        RecordView record(header, dim_);
        for (size_t j = 0; j < columns.size(); ++j) {
          std::memcpy(out.columns[j] + row * dim_, record.column(columns[j]),
                      dim_ * sizeof(float));
        }
      });
      if (!out.keys_filtered) continue;
      shard.pending.ForEach([&](K key, int64_t freq, int64_t version) {
        const int64_t row = filtered_start[Bucket(key)]++;
        out.keys_filtered[row] = key;
        if (out.freqs_filtered) out.freqs_filtered[row] = freq;
        if (out.versions_filtered) out.versions_filtered[row] = version;
      });
    }
  }

  // Not-admitted ids read back from a checkpoint.
  struct FilteredRows {
    const K* keys = nullptr;
    int64_t n = 0;
    const int64_t* freqs = nullptr;     // may be null (frequency 0)
    const int64_t* versions = nullptr;  // may be null (version -1)
  };

  // Writes `values` ([n, dim]) into `column` for each key, inserting missing
  // keys with default rows. `freqs`/`versions` may be null (left unchanged
  // for existing keys). With `drop_absent`, keys not in `keys` are removed,
  // which makes a restore replace the table rather than merge into it. The
  // operation is idempotent and order-independent between columns, so the
  // value and slot restores of one checkpoint may run in any order.
  //
  // With `drop_absent` the not-admitted ids are replaced by `filtered`, each
  // judged against this table's filter: one whose frequency reaches
  // filter_freq is admitted with default rows, the others wait. Ids in `keys`
  // were admitted and stay admitted whatever their frequency.
  void Import(const K* keys, int64_t n, int column, const float* values,
              const int64_t* freqs, const int64_t* versions, bool drop_absent,
              const FilteredRows& filtered = {}) {
    AllLocks<std::unique_lock<std::shared_mutex>> lock(this);
    CheckColumn(column);
    std::array<std::vector<bool>, kNumShards> touched;
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t hash = MixKey(static_cast<uint64_t>(keys[i]));
      Shard& shard = ShardFor(hash);
      const uint32_t idx = FindOrInsertLocked(shard, keys[i], hash);
      int64_t* header = RecordPtr(shard, idx);
      if (freqs) header[0] = freqs[i];
      if (versions) header[1] = versions[i];
      std::memcpy(RecordView(header, dim_).column(column), values + i * dim_,
                  dim_ * sizeof(float));
      if (drop_absent) {
        std::vector<bool>& marks = touched[&shard - shards_.data()];
        if (marks.size() <= idx) marks.resize(idx + 1, false);
        marks[idx] = true;
      }
    }
    if (!drop_absent) return;
    for (int s = 0; s < kNumShards; ++s) {
      std::vector<K> stale;
      shards_[s].index.ForEach([&](K key, uint32_t idx) {
        if (idx >= touched[s].size() || !touched[s][idx]) stale.push_back(key);
      });
      for (K key : stale) EraseLocked(shards_[s], key);
      shards_[s].pending.Clear();
    }
    for (int64_t i = 0; i < filtered.n; ++i) {
      const K key = filtered.keys[i];
      const uint64_t hash = MixKey(static_cast<uint64_t>(key));
      Shard& shard = ShardFor(hash);
      if (shard.index.Find(key, hash) != KeyIndex<K>::kEmpty) continue;
      const int64_t freq = filtered.freqs ? filtered.freqs[i] : 0;
      const int64_t version = filtered.versions ? filtered.versions[i] : -1;
      if (freq >= policy_.admission.filter_freq) {
        int64_t* header =
            RecordPtr(shard, FindOrInsertLocked(shard, key, hash));
        header[0] = freq;
        header[1] = version;
      } else {
        shard.pending.Restore(key, hash, freq, version);
      }
    }
  }

  // Removes `keys` (absent keys are ignored). Returns how many were removed.
  int64_t Erase(const K* keys, int64_t n) {
    int64_t removed = 0;
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t hash = MixKey(static_cast<uint64_t>(keys[i]));
      Shard& shard = ShardFor(hash);
      std::unique_lock<std::shared_mutex> lock(shard.mu);
      removed += EraseLocked(shard, keys[i]) ? 1 : 0;
    }
    return removed;
  }

 private:
  struct Shard {
    mutable std::shared_mutex mu;
    KeyIndex<K> index;
    std::vector<std::unique_ptr<int64_t[]>> chunks;
    std::vector<uint32_t> free_records;
    uint32_t next_record = 0;
    PendingIds<K> pending;
  };

  // Holds every shard lock, taken in shard order to avoid deadlock.
  template <typename Lock>
  struct AllLocks {
    explicit AllLocks(const EmbeddingTable* table) {
      for (const Shard& shard : table->shards_) locks.emplace_back(shard.mu);
    }
    std::vector<Lock> locks;
  };

  // How far ahead batch loops prefetch hash slots.
  static constexpr int64_t kPrefetch = 8;
  // Batches of fewer keys are preloaded (see ForEachShardOf), about
  // kWindow keys at a time, whose records then stay in the L2 cache.
  static constexpr int64_t kPreloadBelow = 2048;
  static constexpr int64_t kWindow = 256;

  // A byte range [begin, end) of a record.
  struct ByteRange {
    int64_t begin;
    int64_t end;
  };

  // A batch's keys grouped by shard: positions of shard s are
  // order[start[s] .. start[s + 1]), in batch order. `bytes` is what the
  // batch loop reads of each key's record.
  struct Batch {
    const K* keys;
    ByteRange bytes;
    bool preload;  // Whether ForEachShardOf preloads the records.
    std::vector<uint64_t> hash;
    std::vector<int64_t> order;
    std::array<int64_t, kNumShards + 1> start{};
  };

  static int ShardIndex(uint64_t hash) {
    return static_cast<int>(hash >> (64 - kShardBits));
  }

  static Batch Group(const K* keys, int64_t n, ByteRange bytes) {
    Batch batch;
    batch.keys = keys;
    batch.bytes = bytes;
    batch.preload = n < kPreloadBelow;
    batch.hash.resize(n);
    batch.order.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      batch.hash[i] = MixKey(static_cast<uint64_t>(keys[i]));
      ++batch.start[ShardIndex(batch.hash[i]) + 1];
    }
    for (int s = 0; s < kNumShards; ++s) batch.start[s + 1] += batch.start[s];
    std::array<int64_t, kNumShards> cursor;
    std::copy(batch.start.begin(), batch.start.end() - 1, cursor.begin());
    for (int64_t i = 0; i < n; ++i) {
      batch.order[cursor[ShardIndex(batch.hash[i])]++] = i;
    }
    return batch;
  }

  // Starts loading the hash slot of the key at position `at` of the batch's
  // shard order (nothing past its end), without that shard's lock.
  void PrefetchSlot(const Batch& batch, int64_t at) const {
    if (at >= static_cast<int64_t>(batch.order.size())) return;
    const uint64_t hash = batch.hash[batch.order[at]];
    shards_[ShardIndex(hash)].index.PrefetchUnlocked(hash);
  }

  // Starts loading batch.bytes of the records of shard s's batch keys, and
  // the hash slots kPrefetch keys ahead, across shard boundaries.
  void Preload(const Batch& batch, int64_t s) const {
    const int64_t begin = batch.start[s], end = batch.start[s + 1];
    if (begin == end) return;
    const Shard& shard = shards_[s];
    std::shared_lock<std::shared_mutex> lock(shard.mu);
    const ByteRange bytes = batch.bytes;
    for (int64_t at = begin; at < end; ++at) {
      PrefetchSlot(batch, at + kPrefetch);
      const int64_t i = batch.order[at];
      const uint32_t idx = shard.index.Find(batch.keys[i], batch.hash[i]);
      if (idx != KeyIndex<K>::kEmpty) {
        PrefetchLines<kRead>(RecordPtr(shard, idx), bytes.begin, bytes.end);
      }
    }
  }

  // Calls fn(shard, positions, count) for every shard holding batch keys;
  // shards are independent, so `run` may process them in parallel.
  //
  // A record can only be found under its shard's lock, and fn must finish a
  // shard before it unlocks it. So fn alone, prefetching as it goes, waits
  // for every shard's first cache misses (its keys' hash slots, then their
  // records) in turn, which is most of the time of a batch of a few hundred
  // keys, a few per shard. Batches of fewer than kPreloadBelow keys are
  // therefore preloaded: shards are visited in windows of about kWindow
  // keys, and before fn sees a window, Preload finds its keys and starts
  // loading their records, all misses overlapped. For tables far larger
  // than the caches, that takes a lookup of 150 keys from 36 to 19 us and
  // their update from 31 to 15. It costs a second, cached, probe per key,
  // which larger batches do not recoup (46 vs 40 ns per key at 5,600 keys).
  template <typename Table, typename Fn>
  static void ForEachShardOf(Table* table, const Batch& batch,
                             const Runner& run, Fn&& fn) {
    run(kNumShards, [&](int64_t begin, int64_t end) {
      if (batch.preload) {
        for (int64_t k = 0; k < kPrefetch; ++k) {
          table->PrefetchSlot(batch, batch.start[begin] + k);
        }
      }
      for (int64_t first = begin; first < end;) {
        int64_t last = first;
        do {
          if (batch.preload) table->Preload(batch, last);
          ++last;
        } while (last < end &&
                 batch.start[last] - batch.start[first] < kWindow);
        for (int64_t s = first; s < last; ++s) {
          const int64_t m = batch.start[s + 1] - batch.start[s];
          if (m > 0) {
            fn(table->shards_[s], batch.order.data() + batch.start[s], m);
          }
        }
        first = last;
      }
    });
  }
  template <typename Fn>
  void ForEachShard(const Batch& batch, const Runner& run, Fn&& fn) {
    ForEachShardOf(this, batch, run, std::forward<Fn>(fn));
  }
  template <typename Fn>
  void ForEachShard(const Batch& batch, const Runner& run, Fn&& fn) const {
    ForEachShardOf(this, batch, run, std::forward<Fn>(fn));
  }

  // Occurrences that key i stands for: counts[i], or `each` without counts.
  static int64_t CountOf(const int64_t* counts, int64_t each, int64_t i) {
    return counts != nullptr ? counts[i] : each;
  }

  void LookupOrInsertImpl(const K* keys, int64_t n, float* out,
                          const int64_t* counts, int64_t each,
                          const Runner& run) {
    // The header too: the lookup counts the key's frequency there.
    const Batch batch = Group(keys, n, {0, ColumnBytes(0).end});
    std::vector<uint32_t> found_all(n);
    ForEachShard(batch, run, [&](Shard& shard, const int64_t* pos, int64_t m) {
      uint32_t* found = ShardSlice(batch, pos, found_all);
      bool any_miss = false;
      {
        std::shared_lock<std::shared_mutex> lock(shard.mu);
        FindAll(shard, keys, batch, pos, m, out, found);
        for (int64_t j = 0; j < m; ++j) {
          if (found[j] == KeyIndex<K>::kEmpty) {
            any_miss = true;
          } else {
            ReadHit(shard, found[j], out + pos[j] * dim_,
                    CountOf(counts, each, pos[j]));
          }
        }
      }
      if (!any_miss) return;
      std::unique_lock<std::shared_mutex> lock(shard.mu);
      if (policy_.admission.enabled()) {
        AdmitLocked(shard, keys, batch, pos, found, m, out, counts, each);
        return;
      }
      for (int64_t j = 0; j < m; ++j) {
        if (found[j] != KeyIndex<K>::kEmpty) continue;
        const int64_t i = pos[j];
        const uint32_t idx = FindOrInsertLocked(shard, keys[i], batch.hash[i]);
        ReadHit(shard, idx, out + i * dim_, CountOf(counts, each, i));
      }
    });
  }

  // The part of a batch-wide per-position array that belongs to the shard
  // whose positions start at `pos` (shards own consecutive parts of order).
  template <typename T>
  static T* ShardSlice(const Batch& batch, const int64_t* pos,
                       std::vector<T>& all) {
    return all.data() + (pos - batch.order.data());
  }

  ByteRange ColumnBytes(int column) const {
    const int64_t begin = 2 * sizeof(int64_t) + column * dim_ * sizeof(float);
    return {begin, begin + dim_ * static_cast<int64_t>(sizeof(float))};
  }

  // found[j] = record of keys[pos[j]] or kEmpty. Starts loading the row of
  // `out` (dim floats per batch position) that the record will be copied
  // to, and, unless the batch was preloaded, batch.bytes of each record
  // found. Requires the shard's lock.
  //
  // Loading a record as soon as its index is known overlaps its cache misses
  // with the next keys' slot probes; prefetching it later, a fixed distance
  // ahead of the copy loop, left the copies waiting on memory (46 vs 36 ns
  // per key for tables far larger than the caches). An output buffer fresh
  // from the allocator is not in the cache either, and the copies stalled on
  // its lines too (52 vs 37 ns per key when every call wrote a cold buffer).
  void FindAll(const Shard& shard, const K* keys, const Batch& batch,
               const int64_t* pos, int64_t m, const float* out,
               uint32_t* found) const {
    const ByteRange bytes = batch.bytes;
    for (int64_t j = 0; j < m; ++j) {
      if (!batch.preload && j + kPrefetch < m) {
        shard.index.Prefetch(batch.hash[pos[j + kPrefetch]]);
      }
      found[j] = shard.index.Find(keys[pos[j]], batch.hash[pos[j]]);
      PrefetchLines<kWrite>(out + pos[j] * dim_, 0, dim_ * sizeof(float));
      if (!batch.preload && found[j] != KeyIndex<K>::kEmpty) {
        PrefetchLines<kRead>(RecordPtr(shard, found[j]), bytes.begin,
                             bytes.end);
      }
    }
  }

  enum Intent { kRead = 0, kWrite = 1 };

  // Starts loading bytes [begin, end) from p, every cache line of them: a
  // row spans several lines, and loading only the first left the others to
  // miss one after another.
  template <Intent kIntent>
  static void PrefetchLines(const void* p, int64_t begin, int64_t end) {
    constexpr uintptr_t kLine = 64;
    const char* base = static_cast<const char*>(p);
    const uintptr_t last = reinterpret_cast<uintptr_t>(base + end - 1);
    for (uintptr_t line =
             reinterpret_cast<uintptr_t>(base + begin) & ~(kLine - 1);
         line <= last; line += kLine) {
      __builtin_prefetch(reinterpret_cast<const void*>(line), kIntent);
    }
  }

  // Gradient rows summed per distinct record, in first-seen order. A record
  // seen once keeps pointing at its row of the batch's gradients; only a
  // repeated record gets a copy to sum into, so a batch of distinct keys
  // (e.g. from a deduplicating lookup) copies nothing.
  struct RowSums {
    // The calling thread's RowSums, emptied for up to `max_rows` records.
    // Reused because a batch visits all kNumShards shards: allocating five
    // vectors per shard cost small batches more than their updates.
    static RowSums& ForThisThread(int64_t max_rows, int64_t dim) {
      static thread_local RowSums sums;
      sums.Reset(max_rows, dim);
      return sums;
    }

    void Reset(int64_t max_rows, int64_t row_dim) {
      dim = row_dim;
      uint64_t capacity = 2;
      while (capacity < static_cast<uint64_t>(2 * max_rows)) capacity *= 2;
      slot_record.assign(capacity, KeyIndex<K>::kEmpty);
      slot_row.resize(capacity);
      mask = capacity - 1;
      records.clear();
      first.clear();
      sum_at.clear();
      sums.clear();
    }

    void Add(uint32_t record, const float* grad) {
      uint64_t pos = MixKey(record) & mask;
      while (slot_record[pos] != KeyIndex<K>::kEmpty &&
             slot_record[pos] != record) {
        pos = (pos + 1) & mask;
      }
      if (slot_record[pos] == KeyIndex<K>::kEmpty) {
        slot_record[pos] = record;
        slot_row[pos] = records.size();
        records.push_back(record);
        first.push_back(grad);
        sum_at.push_back(-1);
        return;
      }
      const uint64_t r = slot_row[pos];
      if (sum_at[r] < 0) {
        sum_at[r] = static_cast<int64_t>(sums.size());
        sums.insert(sums.end(), first[r], first[r] + dim);
      }
      float* sum = sums.data() + sum_at[r];
      for (int64_t d = 0; d < dim; ++d) sum[d] += grad[d];
    }

    const float* row(size_t r) const {
      return sum_at[r] < 0 ? first[r] : sums.data() + sum_at[r];
    }

    int64_t dim = 0;
    uint64_t mask = 0;
    std::vector<uint32_t> slot_record;
    std::vector<uint64_t> slot_row;
    std::vector<uint32_t> records;
    std::vector<const float*> first;  // Per record, its first gradient row.
    std::vector<int64_t> sum_at;      // Per record, its sum in `sums`, or -1.
    std::vector<float> sums;
  };

  void CheckDefaults(const std::vector<float>& values) const {
    if (default_value_dim_ <= 0) {
      throw std::invalid_argument("default_value_dim must be positive, got " +
                                  std::to_string(default_value_dim_));
    }
    if (static_cast<int64_t>(values.size()) != default_value_dim_ * dim_) {
      throw std::invalid_argument(
          "default values hold " + std::to_string(values.size()) +
          " floats, expected default_value_dim * dim = " +
          std::to_string(default_value_dim_ * dim_));
    }
  }

  void CheckColumn(int column) const {
    if (column < 0 || column >= static_cast<int>(defaults_.size())) {
      throw std::out_of_range("column " + std::to_string(column) +
                              " out of range [0, " +
                              std::to_string(defaults_.size()) + ")");
    }
  }

  int64_t RecordWords(int columns) const {
    // Header (2 words) + floats rounded up to whole 8-byte words.
    return 2 + (columns * dim_ + 1) / 2;
  }

  Shard& ShardFor(uint64_t hash) { return shards_[ShardIndex(hash)]; }
  const Shard& ShardFor(uint64_t hash) const {
    return shards_[ShardIndex(hash)];
  }

  int64_t* RecordPtr(const Shard& shard, uint32_t idx) const {
    return shard.chunks[idx / kChunkRecords].get() +
           (idx % kChunkRecords) * record_words_;
  }

  const float* DefaultRow(int column, K key) const {
    int64_t row = static_cast<int64_t>(key) % default_value_dim_;
    if (row < 0) row += default_value_dim_;
    return defaults_[column].data() + row * dim_;
  }

  void FillColumn(const RecordView& record, int column, K key) const {
    std::memcpy(record.column(column), DefaultRow(column, key),
                dim_ * sizeof(float));
  }

  void ReadHit(const Shard& shard, uint32_t idx, float* out,
               int64_t count) const {
    int64_t* header = RecordPtr(shard, idx);
    if (count != 0) __atomic_fetch_add(header, count, __ATOMIC_RELAXED);
    std::memcpy(out, RecordView(header, dim_).column(0), dim_ * sizeof(float));
  }

  // out[i] = header word `word` of keys[i], or absent(shard, key, hash) for
  // keys without a record.
  template <typename Absent>
  void ReadHeader(const K* keys, int64_t n, int64_t* out, int word,
                  Absent&& absent) const {
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t hash = MixKey(static_cast<uint64_t>(keys[i]));
      const Shard& shard = ShardFor(hash);
      std::shared_lock<std::shared_mutex> lock(shard.mu);
      const uint32_t idx = shard.index.Find(keys[i], hash);
      out[i] =
          idx == KeyIndex<K>::kEmpty
              ? absent(shard, keys[i], hash)
              : __atomic_load_n(RecordPtr(shard, idx) + word, __ATOMIC_RELAXED);
    }
  }

  // The lookup of a shard's ids that had no record (found[j] == kEmpty for
  // keys[pos[j]]) under admission: each occurrence reads
  // no_permission_value and is counted; ids whose frequency reaches
  // filter_freq are admitted after the whole batch, so admission takes
  // effect from the next lookup. Key i stands for CountOf(counts, each, i)
  // occurrences. Requires the shard's exclusive lock.
  void AdmitLocked(Shard& shard, const K* keys, const Batch& batch,
                   const int64_t* pos, const uint32_t* found, int64_t m,
                   float* out, const int64_t* counts, int64_t each) {
    const AdmissionPolicy& admission = policy_.admission;
    // Ids that reach filter_freq in this batch, with their frequency. Their
    // later occurrences in the batch are counted here, not in `pending`,
    // whose Bloom counters saturate at the threshold's width.
    std::vector<std::pair<int64_t, int64_t>> ready;  // (index, frequency)
    std::unordered_map<K, size_t> ready_at;
    for (int64_t j = 0; j < m; ++j) {
      if (found[j] != KeyIndex<K>::kEmpty) continue;
      const int64_t i = pos[j];
      const int64_t count = CountOf(counts, each, i);
      const uint32_t idx = shard.index.Find(keys[i], batch.hash[i]);
      if (idx != KeyIndex<K>::kEmpty) {
        ReadHit(shard, idx, out + i * dim_, count);
        continue;
      }
      std::fill_n(out + i * dim_, dim_, admission.no_permission_value);
      if (!ready_at.empty()) {
        const auto it = ready_at.find(keys[i]);
        if (it != ready_at.end()) {
          ready[it->second].second += count;
          continue;
        }
      }
      // One occurrence at a time until the id reaches filter_freq (at most
      // filter_freq steps), so that saturating Bloom counters see what
      // `count` separate occurrences would; the rest are counted exactly.
      int64_t left = count;
      int64_t freq =
          shard.pending.Count(keys[i], batch.hash[i], left > 0 ? 1 : 0);
      if (left > 0) --left;
      while (left > 0 && freq < admission.filter_freq) {
        freq = shard.pending.Count(keys[i], batch.hash[i], 1);
        --left;
      }
      if (freq >= admission.filter_freq) {
        ready_at.emplace(keys[i], ready.size());
        ready.emplace_back(i, freq + left);
      }
    }
    for (const auto& [i, freq] : ready) {
      const int64_t version = shard.pending.Take(keys[i], batch.hash[i]);
      int64_t* header =
          RecordPtr(shard, FindOrInsertLocked(shard, keys[i], batch.hash[i]));
      header[0] = freq;
      header[1] = version;
    }
  }

  bool ShouldEvict(const int64_t* header, int64_t global_step) const {
    if (policy_.steps_to_live >= 0 && global_step >= 0 &&
        global_step - header[1] > policy_.steps_to_live) {
      return true;
    }
    if (policy_.l2_weight_threshold < 0) return false;
    const float* value = reinterpret_cast<const float*>(header + 2);
    double sum = 0;
    for (int64_t d = 0; d < dim_; ++d) sum += double{value[d]} * value[d];
    return std::sqrt(sum) < policy_.l2_weight_threshold;
  }

  // Requires the shard's exclusive lock.
  uint32_t FindOrInsertLocked(Shard& shard, K key, uint64_t hash) {
    uint32_t idx = shard.index.Find(key, hash);
    if (idx != KeyIndex<K>::kEmpty) return idx;
    if (!shard.free_records.empty()) {
      idx = shard.free_records.back();
      shard.free_records.pop_back();
    } else {
      if (shard.next_record == KeyIndex<K>::kEmpty) {
        throw std::length_error("embedding table shard is full");
      }
      idx = shard.next_record++;
      if (idx / kChunkRecords >= shard.chunks.size()) {
        shard.chunks.emplace_back(new int64_t[kChunkRecords * record_words_]);
      }
    }
    int64_t* header = RecordPtr(shard, idx);
    header[0] = 0;
    header[1] = -1;
    RecordView record(header, dim_);
    for (int c = 0; c < static_cast<int>(defaults_.size()); ++c) {
      FillColumn(record, c, key);
    }
    shard.index.Insert(key, hash, idx);
    return idx;
  }

  bool EraseLocked(Shard& shard, K key) {
    const uint32_t idx =
        shard.index.Erase(key, MixKey(static_cast<uint64_t>(key)));
    if (idx == KeyIndex<K>::kEmpty) return false;
    shard.free_records.push_back(idx);
    return true;
  }

  const int64_t dim_;
  const int64_t default_value_dim_;
  // Guarded by all shard locks: written only while every lock is held
  // exclusively, so holding any one shard lock makes them safe to read.
  std::vector<std::vector<float>> defaults_;
  const TablePolicy policy_;
  std::atomic<int64_t> last_evicted_{0};
  int64_t record_words_;
  std::array<Shard, kNumShards> shards_;
};

}  // namespace embedding
}  // namespace deeprec

#endif  // DEEPREC_EMBEDDING_EMBEDDING_TABLE_H_
