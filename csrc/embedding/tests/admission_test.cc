// Feature admission (exact counter and counting Bloom filter) and eviction
// of EmbeddingTable, against hand-computed expectations, single- and
// multi-threaded.
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "csrc/embedding/counting_bloom.h"
#include "csrc/embedding/embedding_table.h"
#include "csrc/embedding/tests/check.h"

using deeprec::embedding::CountingBloom;
using deeprec::embedding::EmbeddingTable;
using deeprec::embedding::MixKey;
using deeprec::embedding::RecordView;
using deeprec::embedding::TablePolicy;

namespace {

constexpr float kNoPermission = -7.0f;

TablePolicy Filter(int64_t freq, bool bloom) {
  TablePolicy policy;
  policy.admission.filter_freq = freq;
  policy.admission.no_permission_value = kNoPermission;
  if (bloom) {
    policy.admission.bloom_counters = 64 * 512;
    policy.admission.bloom_hashes = 4;
    policy.admission.bloom_counter_bits = 8;
  }
  return policy;
}

std::vector<float> Ones(int64_t rows, int64_t dim) {
  return std::vector<float>(rows * dim, 1.0f);
}

void AdmitsAfterTheBatchThatReachesFilterFreq(bool bloom) {
  EmbeddingTable<int64_t> t(1, 4, Ones(4, 1), Filter(3, bloom));
  const std::vector<int64_t> keys = {1, 1, 1, 1, 2, 2, 2, 3, 3, 4};
  std::vector<float> out(keys.size());
  t.LookupOrInsert(keys.data(), keys.size(), out.data(), true);
  for (float v : out) CHECK_EQ(v, kNoPermission);
  CHECK_EQ(t.size(), 2);  // ids 1 and 2 reached 3 sightings
  std::vector<int64_t> freq(4);
  const std::vector<int64_t> probe = {1, 2, 3, 4};
  t.GetFrequency(probe.data(), 4, freq.data());
  CHECK(freq == (std::vector<int64_t>{4, 3, 2, 1}));
  // Updates reach admitted ids only.
  std::vector<float> grads(keys.size(), 1.0f);
  int updated = 0;
  t.ApplyGradients(keys.data(), keys.size(), grads.data(), 5,
                   [&](RecordView r, const float* g) {
                     ++updated;
                     r.column(0)[0] -= g[0];
                   });
  CHECK_EQ(updated, 2);
  t.LookupOrInsert(keys.data(), keys.size(), out.data(), true);
  CHECK_EQ(out[0], 1.0f - 4.0f);  // id 1: four gradient rows summed
  CHECK_EQ(out[4], 1.0f - 3.0f);
  CHECK_EQ(out[7], kNoPermission);
  CHECK_EQ(t.size(), 3);  // id 3 reached 4 sightings in the second batch
  CHECK_EQ(t.GetStats().filtered, bloom ? 0 : 1);
}

// A key standing for several occurrences (LookupOrInsertCounted) is admitted
// exactly as that many separate occurrences would be, with the same
// frequency, even past what a Bloom filter's counters hold (4 bits, at most
// 15, for filter_freq 3).
void CountedLookupAdmitsLikeRepeatedKeys(bool bloom) {
  const TablePolicy policy = Filter(3, bloom);
  EmbeddingTable<int64_t> repeated(1, 4, Ones(4, 1), policy);
  EmbeddingTable<int64_t> counted(1, 4, Ones(4, 1), policy);
  const std::vector<int64_t> keys = {1, 2, 3, 4};
  const std::vector<int64_t> counts = {40, 3, 2, 1};
  std::vector<int64_t> expanded;
  for (size_t i = 0; i < keys.size(); ++i) {
    expanded.insert(expanded.end(), counts[i], keys[i]);
  }
  for (int round = 0; round < 2; ++round) {
    std::vector<float> out_r(expanded.size()), out_c(keys.size());
    repeated.LookupOrInsert(expanded.data(), expanded.size(), out_r.data(),
                            true);
    counted.LookupOrInsertCounted(keys.data(), counts.data(), keys.size(),
                                  out_c.data());
    size_t e = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      for (int64_t c = 0; c < counts[i]; ++c) CHECK_EQ(out_r[e++], out_c[i]);
    }
    CHECK_EQ(repeated.size(), counted.size());
    std::vector<int64_t> f_r(4), f_c(4);
    repeated.GetFrequency(keys.data(), 4, f_r.data());
    counted.GetFrequency(keys.data(), 4, f_c.data());
    CHECK(f_r == f_c);
  }
  std::vector<int64_t> freq(4);
  counted.GetFrequency(keys.data(), 4, freq.data());
  CHECK(freq == (std::vector<int64_t>{80, 6, 4, 2}));
}

TEST(CountedLookupCounterFilter) { CountedLookupAdmitsLikeRepeatedKeys(false); }
TEST(CountedLookupBloomFilter) { CountedLookupAdmitsLikeRepeatedKeys(true); }

TEST(CounterFilterAdmission) {
  AdmitsAfterTheBatchThatReachesFilterFreq(false);
}
TEST(BloomFilterAdmission) { AdmitsAfterTheBatchThatReachesFilterFreq(true); }

TEST(CountingBloomNeverUndercountsAndSaturates) {
  CountingBloom bloom(1000, 3, 8, 200);
  CHECK_EQ(bloom.counter_bits(), 8);
  for (uint64_t k = 0; k < 200; ++k) bloom.Add(MixKey(k), k % 7);
  for (uint64_t k = 0; k < 200; ++k) CHECK(bloom.Estimate(MixKey(k)) >= k % 7);
  CHECK_EQ(bloom.Add(MixKey(5000), 1000), 255u);
  CHECK_THROWS(CountingBloom(0, 3, 8, 1), std::invalid_argument);
  CHECK_THROWS(CountingBloom(10, 3, 12, 1), std::invalid_argument);
  CHECK_THROWS(CountingBloom(10, 3, 8, 256), std::invalid_argument);
  CHECK_THROWS(CountingBloom(10, 3, 8, 0), std::invalid_argument);
}

TEST(CountingBloomStoresCountersInTheThresholdsWidth) {
  CHECK_EQ(CountingBloom(1001, 3, 64, 5).counter_bits(), 4);
  CHECK_EQ(CountingBloom(1001, 3, 64, 5).bytes(), 501);
  CHECK_EQ(CountingBloom(1000, 3, 64, 16).counter_bits(), 8);
  CHECK_EQ(CountingBloom(1000, 3, 64, 70000).counter_bits(), 32);
  CHECK_EQ(CountingBloom(1000, 3, 16, 70).counter_bits(), 8);
  // Neighbouring 4-bit counters share a byte and must not disturb each
  // other: every key keeps an estimate of at least min(count, 15).
  CountingBloom bloom(301, 2, 8, 5);
  std::vector<uint64_t> truth(300);
  for (int round = 0; round < 20; ++round) {
    for (uint64_t k = 0; k < truth.size(); ++k) {
      const uint64_t add = (k * 7 + round) % 3;
      bloom.Add(MixKey(k), add);
      truth[k] += add;
    }
  }
  for (uint64_t k = 0; k < truth.size(); ++k) {
    const uint64_t estimate = bloom.Estimate(MixKey(k));
    CHECK(estimate <= 15u);
    CHECK(estimate >= (truth[k] < 15 ? truth[k] : 15));
  }
}

TEST(BloomAdmissionKeepsExactFrequencyPastTheCountersWidth) {
  EmbeddingTable<int64_t> t(1, 1, Ones(1, 1), Filter(3, true));
  const std::vector<int64_t> keys(40, 9);
  std::vector<float> out(keys.size());
  t.LookupOrInsert(keys.data(), keys.size(), out.data(), true);
  int64_t freq = 0;
  t.GetFrequency(keys.data(), 1, &freq);
  CHECK_EQ(freq, 40);
}

TEST(EvictionByStepAndL2) {
  TablePolicy by_step;
  by_step.steps_to_live = 2;
  EmbeddingTable<int64_t> t(1, 1, Ones(1, 1), by_step);
  const std::vector<int64_t> all = {1, 2, 3};
  std::vector<float> grads(3, 0.0f);
  t.ApplyGradients(all.data(), 3, grads.data(), 0,
                   [](RecordView, const float*) {});
  t.ApplyGradients(all.data() + 1, 2, grads.data(), 3,
                   [](RecordView, const float*) {});
  CHECK_EQ(t.Evict(4), 1);  // id 1: 4 - 0 > 2
  CHECK_EQ(t.size(), 2);
  CHECK_EQ(t.GetStats().last_evicted, 1);
  CHECK_EQ(t.Evict(-1), 0);  // no global step: the step rule is skipped

  TablePolicy by_l2;
  by_l2.l2_weight_threshold = 1.0f;
  EmbeddingTable<int64_t> u(2, 1, Ones(1, 2), by_l2);  // norm sqrt(2) each
  std::vector<float> g = {0.5f, 0.5f, 0, 0};
  u.ApplyGradients(all.data(), 2, g.data(), -1,
                   [](RecordView r, const float* d) {
                     r.column(0)[0] -= d[0];
                     r.column(0)[1] -= d[1];
                   });
  CHECK_EQ(u.Evict(-1), 1);  // id 1 now has norm sqrt(0.5) < 1
  CHECK_EQ(u.size(), 1);
}

TEST(ConcurrentAdmissionCountsEveryLookup) {
  EmbeddingTable<int64_t> t(4, 8, Ones(8, 4), Filter(10, false));
  const int kThreads = 4, kRounds = 200;
  std::vector<std::thread> threads;
  for (int w = 0; w < kThreads; ++w) {
    threads.emplace_back([&t] {
      std::vector<int64_t> keys(64);
      std::vector<float> out(64 * 4), grads(64 * 4, 0.1f);
      for (int r = 0; r < kRounds; ++r) {
        for (int i = 0; i < 64; ++i) keys[i] = (r * 7 + i) % 300;
        t.LookupOrInsert(keys.data(), 64, out.data(), true);
        t.ApplyGradients(
            keys.data(), 64, grads.data(), r,
            [](RecordView rec, const float* g) { rec.column(0)[0] -= g[0]; });
      }
    });
  }
  for (std::thread& th : threads) th.join();
  int64_t total = 0;
  std::vector<int64_t> keys(300), freq(300);
  for (int k = 0; k < 300; ++k) keys[k] = k;
  t.GetFrequency(keys.data(), 300, freq.data());
  for (int64_t f : freq) total += f;
  CHECK_EQ(total, int64_t{kThreads} * kRounds * 64);
  CHECK_EQ(t.GetStats().admitted + t.GetStats().filtered, 300);
}

}  // namespace

int main() { return deeprec_test::RunAllTests(); }
