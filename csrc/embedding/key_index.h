// Open-addressing map from a key to a 32-bit record index, for one shard of
// an EmbeddingTable. Not thread-safe: the owning shard's lock guards it.
//
// Every key value is valid (no reserved "empty" key), so emptiness lives in
// the index array: kEmpty marks a free slot. Linear probing with
// backward-shift deletion keeps probe chains short without tombstones.
#ifndef DEEPREC_EMBEDDING_KEY_INDEX_H_
#define DEEPREC_EMBEDDING_KEY_INDEX_H_

#include <cstdint>
#include <memory>
#include <utility>

namespace deeprec {
namespace embedding {

// splitmix64 finalizer: raw ids are often sequential or share low bits, so
// they are mixed before use as a bucket position or shard number.
inline uint64_t MixKey(uint64_t k) {
  k += 0x9e3779b97f4a7c15ULL;
  k = (k ^ (k >> 30)) * 0xbf58476d1ce4e5b9ULL;
  k = (k ^ (k >> 27)) * 0x94d049bb133111ebULL;
  return k ^ (k >> 31);
}

template <typename K>
class KeyIndex {
 public:
  static constexpr uint32_t kEmpty = 0xffffffffu;

  KeyIndex() { Rehash(kMinCapacity); }

  int64_t size() const { return size_; }
  // Bytes held by the index arrays, for memory accounting.
  int64_t bytes() const {
    return static_cast<int64_t>(capacity_) * (sizeof(K) + sizeof(uint32_t));
  }

  // Returns the record index of `key`, or kEmpty.
  uint32_t Find(K key, uint64_t hash) const {
    for (uint64_t pos = hash & mask_;; pos = (pos + 1) & mask_) {
      const uint32_t idx = index_[pos];
      if (idx == kEmpty) return kEmpty;
      if (keys_[pos] == key) return idx;
    }
  }

  // Inserts key -> idx. The key must be absent.
  void Insert(K key, uint64_t hash, uint32_t idx) {
    if ((static_cast<uint64_t>(size_) + 1) * 4 > capacity_ * 3) {
      Rehash(capacity_ * 2);
    }
    uint64_t pos = hash & mask_;
    while (index_[pos] != kEmpty) pos = (pos + 1) & mask_;
    keys_[pos] = key;
    index_[pos] = idx;
    ++size_;
  }

  // Removes `key`; returns its record index or kEmpty if it was absent.
  uint32_t Erase(K key, uint64_t hash) {
    uint64_t pos = hash & mask_;
    for (;; pos = (pos + 1) & mask_) {
      if (index_[pos] == kEmpty) return kEmpty;
      if (keys_[pos] == key) break;
    }
    const uint32_t removed = index_[pos];
    // Backward shift: pull later entries of the probe chain into the hole
    // whenever their home position does not lie in (hole, entry].
    uint64_t hole = pos;
    for (uint64_t next = (pos + 1) & mask_; index_[next] != kEmpty;
         next = (next + 1) & mask_) {
      const uint64_t home = MixKey(static_cast<uint64_t>(keys_[next])) & mask_;
      const bool home_in_range = hole <= next ? (hole < home && home <= next)
                                              : (hole < home || home <= next);
      if (home_in_range) continue;
      keys_[hole] = keys_[next];
      index_[hole] = index_[next];
      hole = next;
    }
    index_[hole] = kEmpty;
    --size_;
    return removed;
  }

  // Calls fn(key, record_index) for every entry.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (uint64_t pos = 0; pos < capacity_; ++pos) {
      if (index_[pos] != kEmpty) fn(keys_[pos], index_[pos]);
    }
  }

  void Clear() {
    // Drop the arrays first: Rehash re-inserts whatever they still hold.
    keys_.reset();
    index_.reset();
    size_ = 0;
    Rehash(kMinCapacity);
  }

 private:
  static constexpr uint64_t kMinCapacity = 16;

  void Rehash(uint64_t capacity) {
    std::unique_ptr<K[]> old_keys = std::move(keys_);
    std::unique_ptr<uint32_t[]> old_index = std::move(index_);
    const uint64_t old_capacity = old_index ? capacity_ : 0;
    keys_.reset(new K[capacity]);
    index_.reset(new uint32_t[capacity]);
    for (uint64_t i = 0; i < capacity; ++i) index_[i] = kEmpty;
    capacity_ = capacity;
    mask_ = capacity - 1;
    for (uint64_t i = 0; i < old_capacity; ++i) {
      if (old_index[i] == kEmpty) continue;
      uint64_t pos = MixKey(static_cast<uint64_t>(old_keys[i])) & mask_;
      while (index_[pos] != kEmpty) pos = (pos + 1) & mask_;
      keys_[pos] = old_keys[i];
      index_[pos] = old_index[i];
    }
  }

  std::unique_ptr<K[]> keys_;
  std::unique_ptr<uint32_t[]> index_;
  uint64_t capacity_ = 0;
  uint64_t mask_ = 0;
  int64_t size_ = 0;
};

}  // namespace embedding
}  // namespace deeprec

#endif  // DEEPREC_EMBEDDING_KEY_INDEX_H_
