// Open-addressing map from a key to a 32-bit record index, for one shard of
// an EmbeddingTable. Not thread-safe: the owning shard's lock guards it.
//
// Every key value is valid (no reserved "empty" key), so emptiness lives in
// the index array: kEmpty marks a free slot. Linear probing with
// backward-shift deletion keeps probe chains short without tombstones.
#ifndef DEEPREC_EMBEDDING_KEY_INDEX_H_
#define DEEPREC_EMBEDDING_KEY_INDEX_H_

#include <atomic>
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
  // Bytes held by the slot array, for memory accounting.
  int64_t bytes() const {
    return static_cast<int64_t>(capacity_) * static_cast<int64_t>(sizeof(Slot));
  }

  // Starts loading the slot where a probe for `hash` begins, so that a batch
  // can overlap its cache misses.
  void Prefetch(uint64_t hash) const {
    __builtin_prefetch(&slots_[hash & mask_]);
  }

  // Prefetch without the owning shard's lock, for batches that look ahead
  // into other shards: the slot array's address and mask are published
  // through relaxed atomics, so a concurrent Rehash at worst makes this load
  // a line of the old or new array (prefetches never fault), never a data
  // race.
  void PrefetchUnlocked(uint64_t hash) const {
    const uintptr_t base = hint_base_.load(std::memory_order_relaxed);
    const uint64_t mask = hint_mask_.load(std::memory_order_relaxed);
    __builtin_prefetch(
        reinterpret_cast<const void*>(base + (hash & mask) * sizeof(Slot)));
  }

  // Returns the record index of `key`, or kEmpty.
  uint32_t Find(K key, uint64_t hash) const {
    for (uint64_t pos = hash & mask_;; pos = (pos + 1) & mask_) {
      const Slot& slot = slots_[pos];
      if (slot.index == kEmpty) return kEmpty;
      if (slot.key == key) return slot.index;
    }
  }

  // Inserts key -> idx. The key must be absent.
  void Insert(K key, uint64_t hash, uint32_t idx) {
    if ((static_cast<uint64_t>(size_) + 1) * 4 > capacity_ * 3) {
      Rehash(capacity_ * 2);
    }
    uint64_t pos = hash & mask_;
    while (slots_[pos].index != kEmpty) pos = (pos + 1) & mask_;
    slots_[pos].key = key;
    slots_[pos].index = idx;
    ++size_;
  }

  // Removes `key`; returns its record index or kEmpty if it was absent.
  uint32_t Erase(K key, uint64_t hash) {
    uint64_t pos = hash & mask_;
    for (;; pos = (pos + 1) & mask_) {
      if (slots_[pos].index == kEmpty) return kEmpty;
      if (slots_[pos].key == key) break;
    }
    const uint32_t removed = slots_[pos].index;
    // Backward shift: pull later entries of the probe chain into the hole
    // whenever their home position does not lie in (hole, entry].
    uint64_t hole = pos;
    for (uint64_t next = (pos + 1) & mask_; slots_[next].index != kEmpty;
         next = (next + 1) & mask_) {
      const uint64_t home =
          MixKey(static_cast<uint64_t>(slots_[next].key)) & mask_;
      const bool home_in_range = hole <= next ? (hole < home && home <= next)
                                              : (hole < home || home <= next);
      if (home_in_range) continue;
      slots_[hole] = slots_[next];
      hole = next;
    }
    slots_[hole].index = kEmpty;
    --size_;
    return removed;
  }

  // Calls fn(key, record_index) for every entry.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (uint64_t pos = 0; pos < capacity_; ++pos) {
      if (slots_[pos].index != kEmpty) fn(slots_[pos].key, slots_[pos].index);
    }
  }

  void Clear() {
    size_ = 0;
    // Drop the old slots first so that Rehash has nothing to carry over.
    slots_.reset();
    Rehash(kMinCapacity);
  }

 private:
  static constexpr uint64_t kMinCapacity = 16;

  // Key and record index side by side: a probe touches one cache line, and
  // packing keeps an int64 slot at 12 bytes.
#pragma pack(push, 4)
  struct Slot {
    K key;
    uint32_t index;
  };
#pragma pack(pop)

  void Rehash(uint64_t capacity) {
    std::unique_ptr<Slot[]> old = std::move(slots_);
    const uint64_t old_capacity = old ? capacity_ : 0;
    slots_.reset(new Slot[capacity]);
    for (uint64_t i = 0; i < capacity; ++i) slots_[i].index = kEmpty;
    capacity_ = capacity;
    mask_ = capacity - 1;
    for (uint64_t i = 0; i < old_capacity; ++i) {
      if (old[i].index == kEmpty) continue;
      uint64_t pos = MixKey(static_cast<uint64_t>(old[i].key)) & mask_;
      while (slots_[pos].index != kEmpty) pos = (pos + 1) & mask_;
      slots_[pos] = old[i];
    }
    hint_base_.store(reinterpret_cast<uintptr_t>(slots_.get()),
                     std::memory_order_relaxed);
    hint_mask_.store(mask_, std::memory_order_relaxed);
  }

  std::unique_ptr<Slot[]> slots_;
  uint64_t capacity_ = 0;
  uint64_t mask_ = 0;
  int64_t size_ = 0;
  // slots_ and mask_ for PrefetchUnlocked.
  std::atomic<uintptr_t> hint_base_{0};
  std::atomic<uint64_t> hint_mask_{0};
};

}  // namespace embedding
}  // namespace deeprec

#endif  // DEEPREC_EMBEDDING_KEY_INDEX_H_
