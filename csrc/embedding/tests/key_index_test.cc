// KeyIndex against std::unordered_map: insert / find / erase (backward-shift
// deletion), growth, Clear, for int64 and int32 keys. Every key value is
// valid, including 0, -1, -2 and the extremes.
#include "csrc/embedding/key_index.h"

#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <unordered_map>
#include <vector>

#include "csrc/embedding/tests/check.h"

using deeprec::embedding::KeyIndex;
using deeprec::embedding::MixKey;

namespace {

template <typename K>
uint64_t H(K key) {
  return MixKey(static_cast<uint64_t>(key));
}

// Full comparison of the index with the reference: size, every present key
// found with its value, ForEach yields exactly the reference, and a set of
// probe keys that are absent from the reference are not found.
template <typename K>
void ExpectSame(const KeyIndex<K>& index,
                const std::unordered_map<K, uint32_t>& ref,
                const std::vector<K>& probes) {
  CHECK_EQ(index.size(), static_cast<int64_t>(ref.size()));
  for (const auto& [key, idx] : ref) CHECK_EQ(index.Find(key, H(key)), idx);
  std::map<K, uint32_t> seen;
  int64_t visits = 0;
  index.ForEach([&](K key, uint32_t idx) {
    ++visits;
    seen[key] = idx;
  });
  CHECK_EQ(visits, static_cast<int64_t>(ref.size()));
  CHECK_EQ(seen.size(), ref.size());
  for (const auto& [key, idx] : seen) {
    auto it = ref.find(key);
    CHECK(it != ref.end());
    if (it != ref.end()) CHECK_EQ(it->second, idx);
  }
  for (K key : probes) {
    if (ref.count(key) == 0) {
      CHECK_EQ(index.Find(key, H(key)), KeyIndex<K>::kEmpty);
    }
  }
}

template <typename K>
std::vector<K> SpecialKeys() {
  using L = std::numeric_limits<K>;
  return {0,
          -1,
          -2,
          1,
          2,
          L::min(),
          L::max(),
          static_cast<K>(L::min() + 1),
          static_cast<K>(L::max() - 1),
          999,
          -999,
          1000,
          -1000,
          1001,
          -1001};
}

// Random insert/erase sequences over a small key universe (so the table stays
// near its load limit and chains wrap around), checking everything after
// every operation.
template <typename K>
void RandomOpsAgainstReference(uint32_t seed, int universe, int ops) {
  std::mt19937_64 rng(seed);
  std::vector<K> keys = SpecialKeys<K>();
  while (static_cast<int>(keys.size()) < universe) {
    keys.push_back(static_cast<K>(rng()));
  }
  KeyIndex<K> index;
  std::unordered_map<K, uint32_t> ref;
  uint32_t next_value = 0;
  for (int op = 0; op < ops; ++op) {
    const K key = keys[rng() % keys.size()];
    // Bias towards insertion early, erasure late, so size sweeps up and down.
    const bool insert = (rng() % 100) < (op < ops / 2 ? 65u : 35u);
    if (insert) {
      if (ref.count(key)) {
        CHECK_EQ(index.Find(key, H(key)), ref[key]);
      } else {
        const uint32_t v = next_value++ % 0xfffffff0u;
        index.Insert(key, H(key), v);
        ref[key] = v;
      }
    } else {
      const uint32_t expected = ref.count(key) ? ref[key] : KeyIndex<K>::kEmpty;
      CHECK_EQ(index.Erase(key, H(key)), expected);
      ref.erase(key);
    }
    ExpectSame(index, ref, keys);
  }
}

// Keys whose home slot in a 16-slot index is `slot`.
template <typename K>
std::vector<K> KeysWithHome(uint64_t slot, int count, K start) {
  std::vector<K> out;
  for (K k = start; static_cast<int>(out.size()) < count; ++k) {
    if ((H(k) & 15) == slot) out.push_back(k);
  }
  return out;
}

}  // namespace

TEST(KeyIndexEmpty) {
  KeyIndex<int64_t> index;
  CHECK_EQ(index.size(), 0);
  CHECK_GE(index.bytes(), 16 * static_cast<int64_t>(sizeof(int64_t) + 4));
  for (int64_t k : SpecialKeys<int64_t>()) {
    CHECK_EQ(index.Find(k, H(k)), KeyIndex<int64_t>::kEmpty);
    CHECK_EQ(index.Erase(k, H(k)), KeyIndex<int64_t>::kEmpty);
  }
  CHECK_EQ(index.size(), 0);
}

TEST(KeyIndexSpecialKeysInt64) {
  KeyIndex<int64_t> index;
  std::unordered_map<int64_t, uint32_t> ref;
  const std::vector<int64_t> keys = SpecialKeys<int64_t>();
  for (size_t i = 0; i < keys.size(); ++i) {
    index.Insert(keys[i], H(keys[i]), static_cast<uint32_t>(i * 7));
    ref[keys[i]] = static_cast<uint32_t>(i * 7);
    ExpectSame(index, ref, keys);
  }
  // Record index 0 is a valid value (distinct from kEmpty).
  CHECK_EQ(index.Find(0, H<int64_t>(0)), 0u);
  for (size_t i = 0; i < keys.size(); i += 2) {
    CHECK_EQ(index.Erase(keys[i], H(keys[i])), ref[keys[i]]);
    ref.erase(keys[i]);
    ExpectSame(index, ref, keys);
  }
}

TEST(KeyIndexSpecialKeysInt32) {
  KeyIndex<int32_t> index;
  std::unordered_map<int32_t, uint32_t> ref;
  const std::vector<int32_t> keys = SpecialKeys<int32_t>();
  for (size_t i = 0; i < keys.size(); ++i) {
    index.Insert(keys[i], H(keys[i]), static_cast<uint32_t>(i));
    ref[keys[i]] = static_cast<uint32_t>(i);
  }
  ExpectSame(index, ref, keys);
  for (int32_t k : keys) {
    CHECK_EQ(index.Erase(k, H(k)), ref[k]);
    ref.erase(k);
    ExpectSame(index, ref, keys);
  }
  CHECK_EQ(index.size(), 0);
}

// A probe chain that wraps from the last slot to slot 0; erasing from its
// start, middle and end must leave the rest reachable.
TEST(KeyIndexWrapAroundChains) {
  for (int erase_pos = 0; erase_pos < 6; ++erase_pos) {
    KeyIndex<int64_t> index;  // 16 slots, room for 12 entries
    std::unordered_map<int64_t, uint32_t> ref;
    std::vector<int64_t> keys = KeysWithHome<int64_t>(14, 3, -500);
    for (int64_t k : KeysWithHome<int64_t>(15, 2, 1 << 20)) keys.push_back(k);
    for (int64_t k : KeysWithHome<int64_t>(0, 1, -(1 << 20))) keys.push_back(k);
    // Chain occupies slots 14, 15, 0, 1, 2, 3.
    for (size_t i = 0; i < keys.size(); ++i) {
      index.Insert(keys[i], H(keys[i]), static_cast<uint32_t>(i));
      ref[keys[i]] = static_cast<uint32_t>(i);
    }
    ExpectSame(index, ref, keys);
    const int64_t victim = keys[erase_pos];
    CHECK_EQ(index.Erase(victim, H(victim)), ref[victim]);
    ref.erase(victim);
    ExpectSame(index, ref, keys);
    // Erase the rest in a different order.
    for (size_t i = keys.size(); i-- > 0;) {
      if (!ref.count(keys[i])) continue;
      CHECK_EQ(index.Erase(keys[i], H(keys[i])), ref[keys[i]]);
      ref.erase(keys[i]);
      ExpectSame(index, ref, keys);
    }
  }
}

TEST(KeyIndexRandomSmallInt64) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    RandomOpsAgainstReference<int64_t>(seed, 24, 600);
  }
}

TEST(KeyIndexRandomSmallInt32) {
  for (uint32_t seed = 100; seed <= 140; ++seed) {
    RandomOpsAgainstReference<int32_t>(seed, 24, 600);
  }
}

TEST(KeyIndexRandomMedium) {
  RandomOpsAgainstReference<int64_t>(7, 300, 6000);
  RandomOpsAgainstReference<int32_t>(8, 300, 6000);
}

// Dense ranges of consecutive keys (sequential ids), including negatives.
TEST(KeyIndexSequentialKeys) {
  KeyIndex<int64_t> index;
  std::unordered_map<int64_t, uint32_t> ref;
  for (int64_t k = -2000; k < 2000; ++k) {
    index.Insert(k, H(k), static_cast<uint32_t>(k + 2000));
    ref[k] = static_cast<uint32_t>(k + 2000);
  }
  ExpectSame(index, ref, {});
  for (int64_t k = -2000; k < 2000; k += 3) {
    CHECK_EQ(index.Erase(k, H(k)), ref[k]);
    ref.erase(k);
  }
  std::vector<int64_t> probes;
  for (int64_t k = -2100; k < 2100; ++k) probes.push_back(k);
  ExpectSame(index, ref, probes);
}

// Growth keeps every entry and the load factor at most 3/4, with a
// power-of-two capacity.
TEST(KeyIndexGrowth) {
  KeyIndex<int64_t> index;
  std::mt19937_64 rng(42);
  std::unordered_map<int64_t, uint32_t> ref;
  const int64_t slot_bytes = sizeof(int64_t) + sizeof(uint32_t);
  int64_t last_capacity = index.bytes() / slot_bytes;
  int growths = 0;
  while (ref.size() < 100000) {
    const int64_t k = static_cast<int64_t>(rng());
    if (ref.count(k)) continue;
    const uint32_t v = static_cast<uint32_t>(ref.size());
    index.Insert(k, H(k), v);
    ref[k] = v;
    const int64_t capacity = index.bytes() / slot_bytes;
    CHECK_EQ(capacity & (capacity - 1), 0);
    CHECK_LE(index.size() * 4, capacity * 3);
    if (capacity != last_capacity) {
      ++growths;
      CHECK_EQ(capacity, last_capacity * 2);
      last_capacity = capacity;
    }
  }
  CHECK_GE(growths, 10);
  ExpectSame(index, ref, {});
  // Erase half, then check everything is still consistent.
  int i = 0;
  for (auto it = ref.begin(); it != ref.end();) {
    if (i++ % 2 == 0) {
      CHECK_EQ(index.Erase(it->first, H(it->first)), it->second);
      it = ref.erase(it);
    } else {
      ++it;
    }
  }
  ExpectSame(index, ref, {});
}

TEST(KeyIndexClear) {
  KeyIndex<int64_t> index;
  std::unordered_map<int64_t, uint32_t> ref;
  for (int64_t k = -50; k < 50; ++k) {
    index.Insert(k, H(k), static_cast<uint32_t>(k + 50));
  }
  CHECK_EQ(index.size(), 100);
  index.Clear();
  std::vector<int64_t> probes;
  for (int64_t k = -60; k < 60; ++k) probes.push_back(k);
  ExpectSame(index, ref, probes);
  CHECK_EQ(index.bytes(), 16 * static_cast<int64_t>(sizeof(int64_t) + 4));
  // Usable again after Clear.
  for (int64_t k = 0; k < 30; ++k) {
    index.Insert(k, H(k), static_cast<uint32_t>(k));
    ref[k] = static_cast<uint32_t>(k);
  }
  ExpectSame(index, ref, probes);
}

int main() { return deeprec_test::RunAllTests(); }
