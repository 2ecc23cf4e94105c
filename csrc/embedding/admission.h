// Feature admission: ids are counted on lookup and get an embedding record
// only once their frequency reaches `filter_freq` (DeepRec's feature filter).
// Until then a shard keeps them here, either exactly (id -> frequency and
// version, like DeepRec's CounterFilter) or approximately in a counting Bloom
// filter (CBFFilter), which stores no ids at all.
#ifndef DEEPREC_EMBEDDING_ADMISSION_H_
#define DEEPREC_EMBEDDING_ADMISSION_H_

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "csrc/embedding/counting_bloom.h"
#include "csrc/embedding/key_index.h"

namespace deeprec {
namespace embedding {

struct AdmissionPolicy {
  // 0 admits every id at its first lookup.
  int64_t filter_freq = 0;
  // > 0 selects the counting Bloom filter with this many counters in total.
  int64_t bloom_counters = 0;
  int bloom_hashes = 0;
  int bloom_counter_bits = 64;
  // What lookups of not-yet-admitted ids return.
  float no_permission_value = 0.0f;

  bool enabled() const { return filter_freq > 0; }
  bool bloom() const { return bloom_counters > 0; }
};

// One shard's ids that were seen but not admitted. Not thread-safe: the
// shard's lock guards it.
template <typename K>
class PendingIds {
 public:
  // `shards` splits the Bloom filter's counters between the table's shards.
  void Init(const AdmissionPolicy& policy, int shards) {
    if (policy.bloom()) {
      bloom_ =
          CountingBloom(std::max<int64_t>(1, policy.bloom_counters / shards),
                        policy.bloom_hashes, policy.bloom_counter_bits,
                        static_cast<uint64_t>(policy.filter_freq));
    }
  }

  // Adds `count` sightings of `key`; returns its frequency so far (with the
  // Bloom filter an estimate that is exact in deciding admission: at least
  // filter_freq exactly when the true frequency may have reached it).
  int64_t Count(K key, uint64_t hash, int64_t count) {
    if (bloom_.enabled()) return Saturate(bloom_.Add(hash, count));
    uint32_t idx = index_.Find(key, hash);
    if (idx == KeyIndex<K>::kEmpty) idx = Add(key, hash, 0, -1);
    meta_[idx].freq += count;
    return meta_[idx].freq;
  }

  // Frequency of `key` (0 when never seen).
  int64_t Frequency(K key, uint64_t hash) const {
    if (bloom_.enabled()) return Saturate(bloom_.Estimate(hash));
    const uint32_t idx = index_.Find(key, hash);
    return idx == KeyIndex<K>::kEmpty ? 0 : meta_[idx].freq;
  }

  // Global step of the last update restored for `key` (-1 when unknown).
  int64_t Version(K key, uint64_t hash) const {
    const uint32_t idx =
        bloom_.enabled() ? KeyIndex<K>::kEmpty : index_.Find(key, hash);
    return idx == KeyIndex<K>::kEmpty ? -1 : meta_[idx].version;
  }

  // Removes `key` on admission; returns the global step of its last
  // restored update (-1 when unknown). The Bloom filter cannot forget a key:
  // its counters stay.
  int64_t Take(K key, uint64_t hash) {
    if (bloom_.enabled()) return -1;
    const uint32_t idx = index_.Erase(key, hash);
    if (idx == KeyIndex<K>::kEmpty) return -1;
    free_.push_back(idx);
    return meta_[idx].version;
  }

  // Records a not-admitted id read back from a checkpoint.
  void Restore(K key, uint64_t hash, int64_t freq, int64_t version) {
    if (bloom_.enabled()) {
      bloom_.Add(hash, static_cast<uint64_t>(std::max<int64_t>(freq, 0)));
      return;
    }
    uint32_t idx = index_.Find(key, hash);
    if (idx == KeyIndex<K>::kEmpty) idx = Add(key, hash, 0, -1);
    meta_[idx] = {freq, version};
  }

  // Calls fn(key, freq, version) for every stored id (none with the Bloom
  // filter, which keeps no ids).
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    index_.ForEach([&](K key, uint32_t idx) {
      fn(key, meta_[idx].freq, meta_[idx].version);
    });
  }

  void Clear() {
    index_.Clear();
    meta_.clear();
    free_.clear();
  }

  int64_t size() const { return index_.size(); }

  int64_t bytes() const {
    return index_.bytes() + bloom_.bytes() +
           static_cast<int64_t>(meta_.capacity() * sizeof(Meta));
  }

 private:
  struct Meta {
    int64_t freq;
    int64_t version;
  };

  static int64_t Saturate(uint64_t value) {
    return value > static_cast<uint64_t>(INT64_MAX)
               ? INT64_MAX
               : static_cast<int64_t>(value);
  }

  uint32_t Add(K key, uint64_t hash, int64_t freq, int64_t version) {
    uint32_t idx;
    if (!free_.empty()) {
      idx = free_.back();
      free_.pop_back();
      meta_[idx] = {freq, version};
    } else {
      idx = static_cast<uint32_t>(meta_.size());
      meta_.push_back({freq, version});
    }
    index_.Insert(key, hash, idx);
    return idx;
  }

  KeyIndex<K> index_;
  std::vector<Meta> meta_;
  std::vector<uint32_t> free_;
  CountingBloom bloom_;
};

}  // namespace embedding
}  // namespace deeprec

#endif  // DEEPREC_EMBEDDING_ADMISSION_H_
