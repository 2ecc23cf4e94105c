// Counting Bloom filter: approximate per-key counts in a fixed number of
// saturating counters, for admission filters that must not store every rare
// key. An estimate is the minimum of the key's counters, so it never
// under-counts below the admission threshold. Not thread-safe: the owning
// shard's lock guards it.
#ifndef DEEPREC_EMBEDDING_COUNTING_BLOOM_H_
#define DEEPREC_EMBEDDING_COUNTING_BLOOM_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/embedding/key_index.h"

namespace deeprec {
namespace embedding {

class CountingBloom {
 public:
  CountingBloom() = default;

  // `counters` counters for keys that each touch `hashes` of them. A counter
  // only has to count up to `threshold` (the admission frequency): once all
  // of a key's counters reach it the key is admitted, and larger values
  // change nothing. So each counter is stored in the fewest of 4, 8, 16, 32
  // or 64 bits that hold `threshold`, never more than `bits` (the counter
  // type the user chose, 8 to 64), and saturates there.
  CountingBloom(int64_t counters, int hashes, int bits, uint64_t threshold)
      : counters_(counters), hashes_(hashes) {
    if (counters <= 0 || hashes <= 0 ||
        (bits != 8 && bits != 16 && bits != 32 && bits != 64) ||
        threshold == 0 || threshold > MaxOf(bits)) {
      throw std::invalid_argument(
          "counting Bloom filter needs counters > 0, hashes > 0, bits in "
          "{8, 16, 32, 64} and 0 < threshold <= the largest value of that "
          "many bits; got " +
          std::to_string(counters) + ", " + std::to_string(hashes) + ", " +
          std::to_string(bits) + ", " + std::to_string(threshold));
    }
    bits_ = 4;
    while (MaxOf(bits_) < threshold) bits_ *= 2;
    max_ = MaxOf(bits_);
    data_.assign((static_cast<size_t>(counters) * bits_ + 7) / 8, 0);
  }

  bool enabled() const { return counters_ > 0; }
  int64_t bytes() const { return static_cast<int64_t>(data_.size()); }
  int counter_bits() const { return bits_; }

  // Adds `count` to the counters of the key with mixed hash `hash`
  // (saturating) and returns the key's new estimate.
  uint64_t Add(uint64_t hash, uint64_t count) {
    uint64_t estimate = max_;
    ForEachCounter(hash, [&](int64_t pos) {
      const uint64_t value = Get(pos);
      const uint64_t updated = max_ - value < count ? max_ : value + count;
      Set(pos, updated);
      estimate = std::min(estimate, updated);
    });
    return estimate;
  }

  // Never below the key's true count, or below the threshold once the true
  // count has reached it.
  uint64_t Estimate(uint64_t hash) const {
    uint64_t estimate = max_;
    ForEachCounter(
        hash, [&](int64_t pos) { estimate = std::min(estimate, Get(pos)); });
    return estimate;
  }

 private:
  static uint64_t MaxOf(int bits) {
    return bits == 64 ? std::numeric_limits<uint64_t>::max()
                      : (uint64_t{1} << bits) - 1;
  }

  // Double hashing: counter i is (h1 + i * h2) mod counters, with h1 and h2
  // re-mixed so that they are independent of the bits that chose the shard.
  template <typename Fn>
  void ForEachCounter(uint64_t hash, Fn&& fn) const {
    const uint64_t h1 = MixKey(hash ^ 0x5bd1e9955bd1e995ULL);
    const uint64_t h2 = MixKey(h1) | 1;
    const uint64_t n = static_cast<uint64_t>(counters_);
    for (int i = 0; i < hashes_; ++i) {
      fn(static_cast<int64_t>((h1 + static_cast<uint64_t>(i) * h2) % n));
    }
  }

  uint64_t Get(int64_t pos) const {
    if (bits_ == 4) return (data_[pos >> 1] >> ((pos & 1) * 4)) & 0xF;
    uint64_t value = 0;
    std::memcpy(&value, data_.data() + pos * (bits_ / 8), bits_ / 8);
    return value;
  }

  void Set(int64_t pos, uint64_t value) {
    if (bits_ == 4) {
      const int shift = (pos & 1) * 4;
      unsigned char& byte = data_[pos >> 1];
      byte = static_cast<unsigned char>((byte & ~(0xF << shift)) |
                                        (value << shift));
      return;
    }
    std::memcpy(data_.data() + pos * (bits_ / 8), &value, bits_ / 8);
  }

  int64_t counters_ = 0;
  int hashes_ = 0;
  int bits_ = 8;
  uint64_t max_ = 0;
  std::vector<unsigned char> data_;
};

}  // namespace embedding
}  // namespace deeprec

#endif  // DEEPREC_EMBEDDING_COUNTING_BLOOM_H_
