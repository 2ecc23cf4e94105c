// EmbeddingTable against hand-computed values and std::map references:
// default rows, frequencies, versions, Update, AddColumn, Export, Import,
// Erase and argument checking, for int64 and int32 keys. Single-threaded; the
// concurrent behaviour is covered by stress_test.cc.
#include "csrc/embedding/embedding_table.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "csrc/embedding/tests/check.h"

using deeprec::embedding::Bucket;
using deeprec::embedding::EmbeddingTable;
using deeprec::embedding::kNumBuckets;
using deeprec::embedding::RecordView;

namespace {

// [rows, dim] defaults whose entries are distinct and exact in float:
// base + row * 100 + d.
std::vector<float> Defaults(int64_t rows, int64_t dim, float base) {
  std::vector<float> v(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t d = 0; d < dim; ++d) v[r * dim + d] = base + r * 100 + d;
  }
  return v;
}

int64_t FloorMod(int64_t a, int64_t m) {
  const int64_t r = a % m;
  return r < 0 ? r + m : r;
}

std::vector<float> DefaultRow(int64_t key, int64_t rows, int64_t dim,
                              float base) {
  std::vector<float> row(dim);
  const int64_t r = FloorMod(key, rows);
  for (int64_t d = 0; d < dim; ++d) row[d] = base + r * 100 + d;
  return row;
}

template <typename K>
std::vector<float> Lookup(EmbeddingTable<K>& t, const std::vector<K>& keys,
                          bool count_freq) {
  std::vector<float> out(keys.size() * t.dim(), -12345.0f);
  t.LookupOrInsert(keys.data(), keys.size(), out.data(), count_freq);
  return out;
}

template <typename K>
std::vector<float> FindRows(const EmbeddingTable<K>& t,
                            const std::vector<K>& keys, int column) {
  std::vector<float> out(keys.size() * t.dim(), -12345.0f);
  t.Find(keys.data(), keys.size(), column, out.data());
  return out;
}

template <typename K>
std::vector<float> FindRow(const EmbeddingTable<K>& t, K key, int column) {
  return FindRows(t, std::vector<K>{key}, column);
}

template <typename K>
int64_t Freq(const EmbeddingTable<K>& t, K key) {
  int64_t f = -99;
  t.GetFrequency(&key, 1, &f);
  return f;
}

template <typename K>
int64_t Version(const EmbeddingTable<K>& t, K key) {
  int64_t v = -99;
  t.GetVersion(&key, 1, &v);
  return v;
}

template <typename K>
struct Exported {
  std::vector<K> keys;
  std::vector<int64_t> freqs;
  std::vector<int64_t> versions;
  std::vector<std::vector<float>> columns;
  std::vector<int64_t> offsets = std::vector<int64_t>(kNumBuckets + 1, -7);
  int alloc_calls = 0;
  int64_t n = -1;
};

template <typename K>
Exported<K> ExportAll(const EmbeddingTable<K>& t,
                      const std::vector<int>& columns,
                      bool with_header = true) {
  Exported<K> e;
  e.columns.resize(columns.size());
  t.Export(
      columns,
      [&](int64_t n, int64_t) {
        ++e.alloc_calls;
        e.n = n;
        e.keys.assign(n, K(0));
        typename EmbeddingTable<K>::ExportBuffers b;
        b.keys = e.keys.data();
        if (with_header) {
          e.freqs.assign(n, -5);
          e.versions.assign(n, -5);
          b.freqs = e.freqs.data();
          b.versions = e.versions.data();
        }
        for (size_t j = 0; j < columns.size(); ++j) {
          e.columns[j].assign(n * t.dim(), -5.0f);
          b.columns.push_back(e.columns[j].data());
        }
        return b;
      },
      e.offsets.data());
  return e;
}

// Bucket layout of an export: offsets[0] = 0, offsets[kNumBuckets] = n,
// offsets[b] is the first row of bucket b, every row lies in its key's
// bucket, keys are unique.
template <typename K>
void CheckExportLayout(const Exported<K>& e) {
  const int64_t n = static_cast<int64_t>(e.keys.size());
  CHECK_EQ(e.alloc_calls, 1);
  CHECK_EQ(e.n, n);
  CHECK_EQ(e.offsets[0], 0);
  CHECK_EQ(e.offsets[kNumBuckets], n);
  for (int64_t b = 0; b < kNumBuckets; ++b) {
    CHECK_LE(e.offsets[b], e.offsets[b + 1]);
    for (int64_t row = e.offsets[b]; row < e.offsets[b + 1]; ++row) {
      CHECK_EQ(Bucket(e.keys[row]), b);
    }
  }
  // Independent recount of the offsets from the keys.
  std::vector<int64_t> count(kNumBuckets, 0);
  for (K k : e.keys) ++count[FloorMod(static_cast<int64_t>(k), kNumBuckets)];
  int64_t acc = 0;
  for (int64_t b = 0; b < kNumBuckets; ++b) {
    CHECK_EQ(e.offsets[b], acc);
    acc += count[b];
  }
  std::set<K> unique(e.keys.begin(), e.keys.end());
  CHECK_EQ(static_cast<int64_t>(unique.size()), n);
}

// Reference record.
struct Rec {
  int64_t freq = 0;
  int64_t version = -1;
  std::vector<std::vector<float>> cols;
};

template <typename K>
void CheckExportMatches(const Exported<K>& e, const std::map<K, Rec>& ref,
                        const std::vector<int>& columns, int64_t dim) {
  CheckExportLayout(e);
  CHECK_EQ(e.keys.size(), ref.size());
  for (size_t row = 0; row < e.keys.size(); ++row) {
    auto it = ref.find(e.keys[row]);
    CHECK(it != ref.end());
    if (it == ref.end()) continue;
    if (!e.freqs.empty()) CHECK_EQ(e.freqs[row], it->second.freq);
    if (!e.versions.empty()) CHECK_EQ(e.versions[row], it->second.version);
    for (size_t j = 0; j < columns.size(); ++j) {
      for (int64_t d = 0; d < dim; ++d) {
        CHECK_EQ(e.columns[j][row * dim + d], it->second.cols[columns[j]][d]);
      }
    }
  }
}

// Checks every reference key through the point-lookup API too.
template <typename K>
void CheckPointLookups(const EmbeddingTable<K>& t,
                       const std::map<K, Rec>& ref) {
  CHECK_EQ(t.size(), static_cast<int64_t>(ref.size()));
  for (const auto& [key, rec] : ref) {
    CHECK_EQ(Freq(t, key), rec.freq);
    CHECK_EQ(Version(t, key), rec.version);
    for (size_t c = 0; c < rec.cols.size(); ++c) {
      CHECK(FindRow(t, key, static_cast<int>(c)) == rec.cols[c]);
    }
  }
}

template <typename K>
std::vector<K> InterestingKeys() {
  using L = std::numeric_limits<K>;
  std::vector<K> keys = {0,
                         -1,
                         -2,
                         1,
                         2,
                         7,
                         -7,
                         999,
                         -999,
                         1000,
                         -1000,
                         1001,
                         -1001,
                         4095,
                         -4096,
                         L::min(),
                         L::max(),
                         static_cast<K>(L::min() + 1),
                         static_cast<K>(L::max() - 1)};
  return keys;
}

template <typename K>
void DefaultRowsFor(int64_t dim, int64_t rows) {
  EmbeddingTable<K> t(dim, rows, Defaults(rows, dim, 0.5f));
  const std::vector<K> keys = InterestingKeys<K>();
  // Find before insertion already reads the default rows (and inserts nothing).
  const std::vector<float> found = FindRows(t, keys, 0);
  CHECK_EQ(t.size(), 0);
  const std::vector<float> got = Lookup(t, keys, false);
  CHECK_EQ(t.size(), static_cast<int64_t>(keys.size()));
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::vector<float> expect = DefaultRow(keys[i], rows, dim, 0.5f);
    for (int64_t d = 0; d < dim; ++d) {
      CHECK_EQ(got[i * dim + d], expect[d]);
      CHECK_EQ(found[i * dim + d], expect[d]);
    }
    CHECK_EQ(Freq(t, keys[i]), 0);
    CHECK_EQ(Version(t, keys[i]), -1);
  }
}

}  // namespace

TEST(DefaultRowsInt64) {
  DefaultRowsFor<int64_t>(4, 10);
  DefaultRowsFor<int64_t>(3, 7);  // odd dim: record words are rounded up
  DefaultRowsFor<int64_t>(1, 1);  // a single default row
  DefaultRowsFor<int64_t>(5, 1000);
}

TEST(DefaultRowsInt32) {
  DefaultRowsFor<int32_t>(4, 10);
  DefaultRowsFor<int32_t>(3, 7);
  DefaultRowsFor<int32_t>(1, 1);
}

TEST(TableBasicProperties) {
  EmbeddingTable<int64_t> t(6, 3, Defaults(3, 6, 0));
  CHECK_EQ(t.dim(), 6);
  CHECK_EQ(t.default_value_dim(), 3);
  CHECK_EQ(t.num_columns(), 1);
  CHECK_EQ(t.size(), 0);
  CHECK_GE(t.MemoryBytes(), 0);
  const int64_t empty_bytes = t.MemoryBytes();
  std::vector<int64_t> keys;
  for (int64_t k = 0; k < 5000; ++k) keys.push_back(k * 977 - 2000000);
  Lookup(t, keys, false);
  CHECK_EQ(t.size(), 5000);
  CHECK_LT(empty_bytes, t.MemoryBytes());
  // Records alone take at least 5000 * (2 header words + 3 value words).
  CHECK_GE(t.MemoryBytes() - empty_bytes, 5000 * 5 * 8);
}

TEST(FrequencyCountsEveryOccurrence) {
  EmbeddingTable<int64_t> t(2, 4, Defaults(4, 2, 0));
  Lookup<int64_t>(t, {5, 5, -3, 5, 0, -3}, true);
  CHECK_EQ(Freq<int64_t>(t, 5), 3);
  CHECK_EQ(Freq<int64_t>(t, -3), 2);
  CHECK_EQ(Freq<int64_t>(t, 0), 1);
  CHECK_EQ(Freq<int64_t>(t, 6), 0);  // absent
  CHECK_EQ(t.size(), 3);
  // Without count_freq: inserts, does not count.
  Lookup<int64_t>(t, {5, 9, 9}, false);
  CHECK_EQ(Freq<int64_t>(t, 5), 3);
  CHECK_EQ(Freq<int64_t>(t, 9), 0);
  CHECK_EQ(t.size(), 4);
  Lookup<int64_t>(t, {9, 9, 9, 9}, true);
  CHECK_EQ(Freq<int64_t>(t, 9), 4);
  // Batched GetFrequency with duplicates and absent keys.
  const std::vector<int64_t> q = {9, 42, 5,
                                  9, -3, std::numeric_limits<int64_t>::min()};
  std::vector<int64_t> f(q.size(), -1);
  t.GetFrequency(q.data(), q.size(), f.data());
  CHECK(f == (std::vector<int64_t>{4, 0, 3, 4, 2, 0}));
  // n = 0 is a no-op.
  t.LookupOrInsert(nullptr, 0, nullptr, true);
  CHECK_EQ(t.size(), 4);
}

TEST(FrequencyInt32) {
  EmbeddingTable<int32_t> t(1, 2, Defaults(2, 1, 0));
  const int32_t mn = std::numeric_limits<int32_t>::min();
  Lookup<int32_t>(t, {mn, mn, -1, mn}, true);
  CHECK_EQ(Freq<int32_t>(t, mn), 3);
  CHECK_EQ(Freq<int32_t>(t, -1), 1);
  CHECK_EQ(Freq<int32_t>(t, 1), 0);
}

TEST(FindNeverInserts) {
  EmbeddingTable<int64_t> t(3, 5, Defaults(5, 3, 10));
  CHECK_EQ(t.AddColumn(Defaults(5, 3, 2000)), 1);
  const std::vector<int64_t> keys = InterestingKeys<int64_t>();
  for (int column = 0; column < 2; ++column) {
    const std::vector<float> rows = FindRows(t, keys, column);
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::vector<float> expect =
          DefaultRow(keys[i], 5, 3, column == 0 ? 10 : 2000);
      for (int d = 0; d < 3; ++d) CHECK_EQ(rows[i * 3 + d], expect[d]);
    }
  }
  CHECK_EQ(t.size(), 0);
  // Present keys read their stored rows, missing ones defaults; still no
  // insertion.
  t.Update(std::vector<int64_t>{7}.data(), 1, 3, [](int64_t, RecordView r) {
    r.column(0)[0] = 1.5f;
    r.column(1)[2] = -2.5f;
  });
  CHECK_EQ(t.size(), 1);
  const std::vector<float> r0 = FindRows<int64_t>(t, {7, 8}, 0);
  const std::vector<float> r1 = FindRows<int64_t>(t, {7, 8}, 1);
  std::vector<float> e7_0 = DefaultRow(7, 5, 3, 10);
  e7_0[0] = 1.5f;
  std::vector<float> e7_1 = DefaultRow(7, 5, 3, 2000);
  e7_1[2] = -2.5f;
  const std::vector<float> e8_0 = DefaultRow(8, 5, 3, 10);
  const std::vector<float> e8_1 = DefaultRow(8, 5, 3, 2000);
  for (int d = 0; d < 3; ++d) {
    CHECK_EQ(r0[d], e7_0[d]);
    CHECK_EQ(r1[d], e7_1[d]);
    CHECK_EQ(r0[3 + d], e8_0[d]);
    CHECK_EQ(r1[3 + d], e8_1[d]);
  }
  CHECK_EQ(t.size(), 1);
  CHECK_EQ(Freq<int64_t>(t, 8), 0);
  CHECK_EQ(Version<int64_t>(t, 8), -1);
}

TEST(VersionAndUpdate) {
  EmbeddingTable<int64_t> t(2, 3, Defaults(3, 2, 0));
  Lookup<int64_t>(t, {1, 2}, true);
  CHECK_EQ(Version<int64_t>(t, 1), -1);   // inserted but never updated
  CHECK_EQ(Version<int64_t>(t, 99), -1);  // absent

  // Update passes the batch position and the record; duplicates each get a
  // call; missing keys are inserted with defaults first.
  const std::vector<int64_t> keys = {1, 2, 1, -4};
  std::vector<int64_t> seen_i;
  t.Update(keys.data(), keys.size(), 17, [&](int64_t i, RecordView r) {
    seen_i.push_back(i);
    CHECK_EQ(r.version(), 17);
    r.column(0)[0] += 10.0f * (i + 1);
  });
  CHECK(seen_i == (std::vector<int64_t>{0, 1, 2, 3}));
  CHECK_EQ(t.size(), 3);
  CHECK_EQ(Version<int64_t>(t, 1), 17);
  CHECK_EQ(Version<int64_t>(t, 2), 17);
  CHECK_EQ(Version<int64_t>(t, -4), 17);
  CHECK_EQ(Freq<int64_t>(t, -4), 0);  // Update does not count frequency
  CHECK_EQ(Freq<int64_t>(t, 1), 1);
  // Key 1 (row 1 = {100, 101}) got +10 and +30; key 2 (row 2) +20;
  // key -4 (floormod(-4,3)=2) +40.
  const std::vector<float> v = Lookup<int64_t>(t, {1, 2, -4}, false);
  CHECK(v == (std::vector<float>{140, 101, 220, 201, 240, 201}));

  // version < 0 leaves the version alone; the functor still runs.
  int calls = 0;
  t.Update(std::vector<int64_t>{1}.data(), 1, -1, [&](int64_t, RecordView r) {
    ++calls;
    CHECK_EQ(r.version(), 17);
  });
  CHECK_EQ(calls, 1);
  CHECK_EQ(Version<int64_t>(t, 1), 17);
  // A new key updated with version -1 stays at -1.
  t.Update(std::vector<int64_t>{50}.data(), 1, -1, [](int64_t, RecordView) {});
  CHECK_EQ(Version<int64_t>(t, 50), -1);
  // Version 0 is a real version.
  t.Update(std::vector<int64_t>{2}.data(), 1, 0, [](int64_t, RecordView) {});
  CHECK_EQ(Version<int64_t>(t, 2), 0);
  // The functor may set the version itself.
  t.Update(std::vector<int64_t>{2}.data(), 1, -1,
           [](int64_t, RecordView r) { r.version() = 123456789012LL; });
  CHECK_EQ(Version<int64_t>(t, 2), 123456789012LL);

  const std::vector<int64_t> q = {1, 2, 99, 50, -4};
  std::vector<int64_t> vs(q.size());
  t.GetVersion(q.data(), q.size(), vs.data());
  CHECK(vs == (std::vector<int64_t>{17, 123456789012LL, -1, -1, 17}));
}

// A runner that splits the shard tasks over real threads, as the op layer's
// thread pool does.
void RunOnThreads(int64_t tasks,
                  const std::function<void(int64_t, int64_t)>& fn) {
  std::vector<std::thread> threads;
  const int64_t step = (tasks + 3) / 4;
  for (int64_t begin = 0; begin < tasks; begin += step) {
    threads.emplace_back(fn, begin, std::min(tasks, begin + step));
  }
  for (std::thread& t : threads) t.join();
}

TEST(ApplyGradientsSumsDuplicatesOncePerKey) {
  const int64_t dim = 2;
  EmbeddingTable<int64_t> t(dim, 4, Defaults(4, dim, 0));
  Lookup<int64_t>(t, {1, 2}, true);
  // Key 1 appears three times, key 7 is new; grads are exact in float.
  const std::vector<int64_t> keys = {1, 7, 1, 2, 1};
  const std::vector<float> grads = {1, 2, 10, 20, 100, 200, 5, 6, 1000, 2000};
  std::map<int64_t, std::vector<float>> seen;
  int calls = 0;
  t.ApplyGradients(keys.data(), keys.size(), grads.data(), 9,
                   [&](RecordView r, const float* g) {
                     ++calls;
                     CHECK_EQ(r.version(), -1);  // none of them updated yet
                     r.column(0)[0] -= g[0];
                     r.column(0)[1] -= g[1];
                   });
  CHECK_EQ(calls, 3);
  CHECK_EQ(t.size(), 3);
  // Row 1 = {100, 101} minus 1101/2202; key 7 takes row 3 = {300, 301}.
  const std::vector<float> v = Lookup<int64_t>(t, {1, 2, 7}, false);
  CHECK(v ==
        (std::vector<float>{100 - 1101.0f, 101 - 2202.0f, 195, 195, 290, 281}));
  CHECK_EQ(Version<int64_t>(t, 7), 9);
  CHECK_EQ(Freq<int64_t>(t, 7), 0);  // applying does not count frequency
  // The callback sees the step of the record's previous update.
  t.ApplyGradients(
      keys.data(), 1, grads.data(), 12,
      [&](RecordView r, const float*) { CHECK_EQ(r.version(), 9); });
  CHECK_EQ(Version<int64_t>(t, 1), 12);
}

// Keys seen once in a batch are applied from the batch's own gradient rows
// (nothing is copied); a repeated key gets its sum.
TEST(ApplyGradientsReadsSingleRowsInPlace) {
  const int64_t dim = 3;
  EmbeddingTable<int64_t> t(dim, 4, Defaults(4, dim, 0));
  const std::vector<int64_t> keys = {5, 6, 5, 8};
  std::vector<float> grads(keys.size() * dim);
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(i);
  std::map<int64_t, const float*> rows;
  std::map<int64_t, std::vector<float>> values;
  t.ApplyGradients(keys.data(), keys.size(), grads.data(), 1,
                   [&](RecordView r, const float* g) {
                     // Key k starts at row k mod 4: column 0 tells them apart.
                     const int64_t key = r.column(0)[0] == 100   ? 5
                                         : r.column(0)[0] == 200 ? 6
                                                                 : 8;
                     rows[key] = g;
                     values[key].assign(g, g + dim);
                   });
  CHECK_EQ(rows.size(), 3u);
  CHECK(rows[6] == grads.data() + 1 * dim);
  CHECK(rows[8] == grads.data() + 3 * dim);
  CHECK(values[5] == (std::vector<float>{0 + 6, 1 + 7, 2 + 8}));
}

// Sums of repeated keys are built in per-thread scratch space that the next
// apply reuses: a large batch on a wide table must leave nothing behind for
// a small batch on a narrow one.
TEST(ApplyGradientsReusesScratchAcrossTables) {
  const int64_t wide = 5, narrow = 2, n = 3000;
  EmbeddingTable<int64_t> a(wide, 4, Defaults(4, wide, 0));
  EmbeddingTable<int64_t> b(narrow, 4, Defaults(4, narrow, 0));
  std::vector<int64_t> keys(n);
  for (int64_t i = 0; i < n; ++i) keys[i] = i % 37;
  const std::vector<float> ones(n * wide, 1.0f);
  a.ApplyGradients(keys.data(), n, ones.data(), 1,
                   [&](RecordView, const float* g) {
                     for (int64_t d = 0; d < wide; ++d) CHECK(g[d] >= 81.0f);
                   });
  const std::vector<int64_t> small = {4, 9, 4};
  const std::vector<float> grads = {1, 2, 3, 4, 10, 20};
  std::map<int64_t, std::vector<float>> seen;
  b.ApplyGradients(small.data(), small.size(), grads.data(), 2,
                   [&](RecordView r, const float* g) {
                     // Key k starts at row k mod 4: 4 -> 0, 9 -> 100.
                     seen[r.column(0)[0] == 0 ? 4 : 9].assign(g, g + narrow);
                   });
  CHECK_EQ(seen.size(), 2u);
  CHECK(seen[4] == (std::vector<float>{11, 22}));
  CHECK(seen[9] == (std::vector<float>{3, 4}));
}

TEST(BatchOperationsOnThreadsMatchSerial) {
  const int64_t dim = 3, n = 5000;
  std::mt19937_64 rng(5);
  std::vector<int64_t> keys(n);
  std::vector<float> grads(n * dim);
  for (int64_t i = 0; i < n; ++i)
    keys[i] = static_cast<int64_t>(rng() % 700) - 350;
  for (float& g : grads) g = static_cast<float>(rng() % 9) - 4.0f;
  EmbeddingTable<int64_t> serial(dim, 16, Defaults(16, dim, 0));
  EmbeddingTable<int64_t> threaded(dim, 16, Defaults(16, dim, 0));
  std::vector<float> out_s(n * dim), out_t(n * dim);
  serial.LookupOrInsert(keys.data(), n, out_s.data(), true);
  threaded.LookupOrInsert(keys.data(), n, out_t.data(), true, RunOnThreads);
  CHECK(out_s == out_t);
  auto sgd = [&](RecordView r, const float* g) {
    for (int64_t d = 0; d < dim; ++d) r.column(0)[d] -= 0.5f * g[d];
  };
  serial.ApplyGradients(keys.data(), n, grads.data(), 3, sgd);
  threaded.ApplyGradients(keys.data(), n, grads.data(), 3, sgd, RunOnThreads);
  serial.Find(keys.data(), n, 0, out_s.data());
  threaded.Find(keys.data(), n, 0, out_t.data(), RunOnThreads);
  CHECK(out_s == out_t);
  std::vector<int64_t> f_s(n), f_t(n);
  serial.GetFrequency(keys.data(), n, f_s.data());
  threaded.GetFrequency(keys.data(), n, f_t.data());
  CHECK(f_s == f_t);
}

// A deduplicated batch with per-key counts reads the same rows and leaves
// the same frequencies as the batch itself.
TEST(LookupOrInsertCountedMatchesRepeatedKeys) {
  const int64_t dim = 3, n = 4000;
  std::mt19937_64 rng(11);
  std::vector<int64_t> keys(n);
  for (int64_t i = 0; i < n; ++i)
    keys[i] = static_cast<int64_t>(rng() % 500) - 100;
  std::map<int64_t, int64_t> counted;
  for (int64_t k : keys) ++counted[k];
  std::vector<int64_t> distinct, counts;
  for (const auto& [k, c] : counted) {
    distinct.push_back(k);
    counts.push_back(c);
  }
  const int64_t m = distinct.size();
  EmbeddingTable<int64_t> repeated(dim, 16, Defaults(16, dim, 0));
  EmbeddingTable<int64_t> deduped(dim, 16, Defaults(16, dim, 0));
  for (int round = 0; round < 2; ++round) {
    std::vector<float> out_r(n * dim), out_d(m * dim);
    repeated.LookupOrInsert(keys.data(), n, out_r.data(), true);
    deduped.LookupOrInsertCounted(distinct.data(), counts.data(), m,
                                  out_d.data(), RunOnThreads);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t j =
          std::lower_bound(distinct.begin(), distinct.end(), keys[i]) -
          distinct.begin();
      CHECK(std::equal(out_r.begin() + i * dim, out_r.begin() + (i + 1) * dim,
                       out_d.begin() + j * dim));
    }
  }
  CHECK_EQ(repeated.size(), deduped.size());
  std::vector<int64_t> f_r(m), f_d(m);
  repeated.GetFrequency(distinct.data(), m, f_r.data());
  deduped.GetFrequency(distinct.data(), m, f_d.data());
  CHECK(f_r == f_d);
  CHECK_EQ(f_d[0], 2 * counts[0]);
}

TEST(AddColumnBeforeRecords) {
  EmbeddingTable<int32_t> t(3, 4, Defaults(4, 3, 0));
  CHECK_EQ(t.AddColumn(Defaults(4, 3, 1000)), 1);
  CHECK_EQ(t.AddColumn(Defaults(4, 3, 2000)), 2);
  CHECK_EQ(t.num_columns(), 3);
  CHECK_EQ(t.size(), 0);
  const std::vector<int32_t> keys = InterestingKeys<int32_t>();
  Lookup(t, keys, true);
  for (int32_t k : keys) {
    for (int c = 0; c < 3; ++c) {
      CHECK(FindRow(t, k, c) == DefaultRow(k, 4, 3, 1000.0f * c));
    }
  }
  // Columns are independent storage.
  t.Update(&keys[0], 1, 1, [](int64_t, RecordView r) {
    r.column(1)[1] = -1;
    r.column(2)[2] = -2;
  });
  std::vector<float> e0 = DefaultRow(keys[0], 4, 3, 0);
  std::vector<float> e1 = DefaultRow(keys[0], 4, 3, 1000);
  std::vector<float> e2 = DefaultRow(keys[0], 4, 3, 2000);
  e1[1] = -1;
  e2[2] = -2;
  CHECK(FindRow(t, keys[0], 0) == e0);
  CHECK(FindRow(t, keys[0], 1) == e1);
  CHECK(FindRow(t, keys[0], 2) == e2);
}

// AddColumn after records exist, with enough keys for several record chunks
// per shard, an odd dim, erased records and later reuse.
TEST(AddColumnAfterRecords) {
  const int64_t dim = 3, rows = 11;
  EmbeddingTable<int64_t> t(dim, rows, Defaults(rows, dim, 0));
  std::map<int64_t, Rec> ref;
  std::mt19937_64 rng(5);
  std::vector<int64_t> keys;
  for (int i = 0; i < 40000; ++i) {
    keys.push_back(static_cast<int64_t>(rng() % 2000000) - 1000000);
  }
  for (int64_t k : InterestingKeys<int64_t>()) keys.push_back(k);
  Lookup(t, keys, true);
  for (int64_t k : keys) {
    Rec& r = ref[k];
    if (r.cols.empty()) r.cols.push_back(DefaultRow(k, rows, dim, 0));
    ++r.freq;
  }
  // Give a third of the keys a version and a modified value.
  int64_t n = 0;
  for (auto& [k, r] : ref) {
    if (n++ % 3 != 0) continue;
    const int64_t version = n;
    t.Update(&k, 1, version, [&](int64_t, RecordView view) {
      view.column(0)[2] = static_cast<float>(n) * 0.25f;
    });
    r.version = version;
    r.cols[0][2] = static_cast<float>(n) * 0.25f;
  }
  // Erase a few so freed records exist when the column is added.
  std::vector<int64_t> erased;
  n = 0;
  for (auto it = ref.begin(); it != ref.end();) {
    if (n++ % 7 == 0) {
      erased.push_back(it->first);
      it = ref.erase(it);
    } else {
      ++it;
    }
  }
  CHECK_EQ(t.Erase(erased.data(), erased.size()),
           static_cast<int64_t>(erased.size()));

  CHECK_EQ(t.AddColumn(Defaults(rows, dim, 5000)), 1);
  for (auto& [k, r] : ref) r.cols.push_back(DefaultRow(k, rows, dim, 5000));
  CheckPointLookups(t, ref);
  CheckExportMatches(ExportAll(t, {0, 1}), ref, {0, 1}, dim);

  // Reuse the freed records: re-inserted keys start from defaults in both
  // columns, with freq 0 / version -1.
  Lookup(t, erased, false);
  for (int64_t k : erased) {
    Rec& r = ref[k];
    r.cols = {DefaultRow(k, rows, dim, 0), DefaultRow(k, rows, dim, 5000)};
  }
  CHECK_EQ(t.AddColumn(Defaults(rows, dim, 9000)), 2);
  for (auto& [k, r] : ref) r.cols.push_back(DefaultRow(k, rows, dim, 9000));
  CheckPointLookups(t, ref);
  CheckExportMatches(ExportAll(t, {2, 0, 1}), ref, {2, 0, 1}, dim);
}

TEST(ExportEmpty) {
  EmbeddingTable<int64_t> t(2, 1, Defaults(1, 2, 0));
  Exported<int64_t> e = ExportAll(t, {0});
  CHECK_EQ(e.n, 0);
  CheckExportLayout(e);
  for (int64_t b = 0; b <= kNumBuckets; ++b) CHECK_EQ(e.offsets[b], 0);
}

template <typename K>
void ExportOrderingFor(uint64_t seed) {
  const int64_t dim = 2, rows = 13;
  EmbeddingTable<K> t(dim, rows, Defaults(rows, dim, 0));
  CHECK_EQ(t.AddColumn(Defaults(rows, dim, 300)), 1);
  std::map<K, Rec> ref;
  std::mt19937_64 rng(seed);
  std::vector<K> keys = InterestingKeys<K>();
  for (int i = 0; i < 5000; ++i) {
    // Mix of small keys (dense buckets) and arbitrary ones.
    keys.push_back(i % 2 ? static_cast<K>(rng() % 4001) - 2000
                         : static_cast<K>(rng()));
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    const K k = keys[i];
    const int reps = 1 + static_cast<int>(i % 3);
    for (int r = 0; r < reps; ++r) Lookup(t, std::vector<K>{k}, true);
    Rec& rec = ref[k];
    if (rec.cols.empty()) {
      rec.cols = {DefaultRow(k, rows, dim, 0), DefaultRow(k, rows, dim, 300)};
    }
    rec.freq += reps;
    if (i % 5 == 0) {
      t.Update(&k, 1, static_cast<int64_t>(i), [&](int64_t, RecordView v) {
        v.column(1)[0] = static_cast<float>(i);
      });
      rec.version = static_cast<int64_t>(i);
      rec.cols[1][0] = static_cast<float>(i);
    }
  }
  CheckExportMatches(ExportAll(t, {0, 1}), ref, {0, 1}, dim);
  CheckExportMatches(ExportAll(t, {1}), ref, {1}, dim);
  // Without header buffers and without columns.
  CheckExportMatches(ExportAll(t, {}, false), ref, {}, dim);
  // Same column twice.
  CheckExportMatches(ExportAll(t, {0, 0}), ref, {0, 0}, dim);
  // Export does not modify anything.
  CheckPointLookups(t, ref);
}

TEST(ExportOrderingInt64) { ExportOrderingFor<int64_t>(11); }
TEST(ExportOrderingInt32) { ExportOrderingFor<int32_t>(12); }

// Bucket() is floormod(key, 1000) for every key, including the extremes.
TEST(BucketFunction) {
  for (int64_t k : InterestingKeys<int64_t>()) {
    CHECK_EQ(Bucket(k), FloorMod(k, 1000));
  }
  for (int32_t k : InterestingKeys<int32_t>()) {
    CHECK_EQ(Bucket(k), FloorMod(k, 1000));
  }
  CHECK_EQ(Bucket<int64_t>(-1), 999);
  CHECK_EQ(Bucket<int64_t>(-1000), 0);
  CHECK_EQ(Bucket<int64_t>(std::numeric_limits<int64_t>::min()), 192);
  CHECK_EQ(Bucket<int64_t>(std::numeric_limits<int64_t>::max()), 807);
  CHECK_EQ(Bucket<int32_t>(std::numeric_limits<int32_t>::min()), 352);
}

TEST(ImportMerge) {
  const int64_t dim = 2, rows = 3;
  EmbeddingTable<int64_t> t(dim, rows, Defaults(rows, dim, 0));
  CHECK_EQ(t.AddColumn(Defaults(rows, dim, 50)), 1);
  std::map<int64_t, Rec> ref;
  Lookup<int64_t>(t, {1, 2, 3, 1}, true);
  t.Update(std::vector<int64_t>{3}.data(), 1, 4, [](int64_t, RecordView) {});
  for (int64_t k : {1, 2, 3}) {
    ref[k].cols = {DefaultRow(k, rows, dim, 0), DefaultRow(k, rows, dim, 50)};
  }
  ref[1].freq = 2;
  ref[2].freq = 1;
  ref[3].freq = 1;
  ref[3].version = 4;

  // Import column 1 for keys {2, 3, 10} with freqs and versions.
  const std::vector<int64_t> keys = {2, 3, 10};
  const std::vector<float> vals = {1, 2, 3, 4, 5, 6};
  const std::vector<int64_t> freqs = {20, 30, 100};
  const std::vector<int64_t> versions = {7, 8, 9};
  t.Import(keys.data(), 3, 1, vals.data(), freqs.data(), versions.data(),
           false);
  ref[2].cols[1] = {1, 2};
  ref[3].cols[1] = {3, 4};
  ref[10].cols = {DefaultRow(10, rows, dim, 0), {5, 6}};
  ref[2].freq = 20;
  ref[3].freq = 30;
  ref[10].freq = 100;
  ref[2].version = 7;
  ref[3].version = 8;
  ref[10].version = 9;
  CheckPointLookups(t, ref);
  CheckExportMatches(ExportAll(t, {0, 1}), ref, {0, 1}, dim);

  // Without freqs/versions: existing headers untouched, new key 0 / -1.
  const std::vector<int64_t> keys2 = {1, -5};
  const std::vector<float> vals2 = {-1, -2, -3, -4};
  t.Import(keys2.data(), 2, 0, vals2.data(), nullptr, nullptr, false);
  ref[1].cols[0] = {-1, -2};
  ref[-5].cols = {{-3, -4}, DefaultRow(-5, rows, dim, 50)};
  CheckPointLookups(t, ref);
  CheckExportMatches(ExportAll(t, {0, 1}), ref, {0, 1}, dim);

  // Idempotent.
  t.Import(keys2.data(), 2, 0, vals2.data(), nullptr, nullptr, false);
  CheckPointLookups(t, ref);

  // Importing nothing without drop_absent changes nothing.
  t.Import(nullptr, 0, 0, nullptr, nullptr, nullptr, false);
  CheckPointLookups(t, ref);
}

namespace {

// Pre-state shared by the drop_absent tests: keys 0..59 with freqs, some
// versions and modified slots.
void Prepare(EmbeddingTable<int64_t>& t) {
  std::vector<int64_t> keys;
  for (int64_t k = -30; k < 30; ++k) keys.push_back(k);
  Lookup(t, keys, true);
  for (int64_t k = -30; k < 30; k += 4) {
    t.Update(&k, 1, k + 100, [&](int64_t, RecordView r) {
      r.column(0)[0] = -static_cast<float>(k);
      r.column(1)[1] = static_cast<float>(k) * 0.5f;
    });
  }
}

struct Checkpoint {
  std::vector<int64_t> keys;
  std::vector<float> values, slots;
  std::vector<int64_t> freqs, versions;
};

Checkpoint MakeCheckpoint(int64_t dim) {
  Checkpoint c;
  // Overlaps the pre-state on [-10, 30) and adds [30, 50) and some negatives.
  for (int64_t k = -10; k < 50; k += 2) c.keys.push_back(k);
  c.keys.push_back(-1000001);
  c.keys.push_back(std::numeric_limits<int64_t>::min());
  for (size_t i = 0; i < c.keys.size(); ++i) {
    for (int64_t d = 0; d < dim; ++d) {
      c.values.push_back(static_cast<float>(i) + 0.125f * d);
      c.slots.push_back(1000.0f + static_cast<float>(i) - 0.5f * d);
    }
    c.freqs.push_back(static_cast<int64_t>(i) * 3 + 1);
    c.versions.push_back(static_cast<int64_t>(i) + 500);
  }
  return c;
}

}  // namespace

TEST(ImportDropAbsentOrderIndependent) {
  const int64_t dim = 3, rows = 5;
  auto make = [&] {
    auto t = std::make_unique<EmbeddingTable<int64_t>>(dim, rows,
                                                       Defaults(rows, dim, 0));
    t->AddColumn(Defaults(rows, dim, 700));
    Prepare(*t);
    return t;
  };
  const Checkpoint c = MakeCheckpoint(dim);
  const int64_t n = c.keys.size();

  // Expected result: exactly the checkpoint.
  std::map<int64_t, Rec> ref;
  for (int64_t i = 0; i < n; ++i) {
    Rec& r = ref[c.keys[i]];
    r.freq = c.freqs[i];
    r.version = c.versions[i];
    r.cols = {std::vector<float>(c.values.begin() + i * dim,
                                 c.values.begin() + (i + 1) * dim),
              std::vector<float>(c.slots.begin() + i * dim,
                                 c.slots.begin() + (i + 1) * dim)};
  }

  // Headers travel with the value import only (as a checkpoint restore
  // would do); the slot import passes none. Both orders.
  auto a = make();
  a->Import(c.keys.data(), n, 1, c.slots.data(), nullptr, nullptr, true);
  a->Import(c.keys.data(), n, 0, c.values.data(), c.freqs.data(),
            c.versions.data(), true);
  auto b = make();
  b->Import(c.keys.data(), n, 0, c.values.data(), c.freqs.data(),
            c.versions.data(), true);
  b->Import(c.keys.data(), n, 1, c.slots.data(), nullptr, nullptr, true);
  CheckPointLookups(*a, ref);
  CheckPointLookups(*b, ref);
  const Exported<int64_t> ea = ExportAll(*a, {0, 1});
  const Exported<int64_t> eb = ExportAll(*b, {0, 1});
  CheckExportMatches(ea, ref, {0, 1}, dim);
  CheckExportMatches(eb, ref, {0, 1}, dim);

  // Headers passed with both imports: same result, both orders.
  auto x = make();
  x->Import(c.keys.data(), n, 1, c.slots.data(), c.freqs.data(),
            c.versions.data(), true);
  x->Import(c.keys.data(), n, 0, c.values.data(), c.freqs.data(),
            c.versions.data(), true);
  auto y = make();
  y->Import(c.keys.data(), n, 0, c.values.data(), c.freqs.data(),
            c.versions.data(), true);
  y->Import(c.keys.data(), n, 1, c.slots.data(), c.freqs.data(),
            c.versions.data(), true);
  CheckPointLookups(*x, ref);
  CheckPointLookups(*y, ref);

  // Re-importing (idempotence) keeps the result.
  a->Import(c.keys.data(), n, 0, c.values.data(), c.freqs.data(),
            c.versions.data(), true);
  CheckPointLookups(*a, ref);

  // Keys dropped by the restore read defaults and can be re-inserted fresh.
  CHECK_EQ(Freq<int64_t>(*a, -30), 0);
  CHECK(FindRow<int64_t>(*a, -30, 0) == DefaultRow(-30, rows, dim, 0));
  Lookup<int64_t>(*a, {-30}, true);
  CHECK_EQ(Freq<int64_t>(*a, -30), 1);
  CHECK_EQ(Version<int64_t>(*a, -30), -1);
  CHECK(FindRow<int64_t>(*a, -30, 1) == DefaultRow(-30, rows, dim, 700));

  // An empty restore with drop_absent empties the table.
  b->Import(nullptr, 0, 0, nullptr, nullptr, nullptr, true);
  CHECK_EQ(b->size(), 0);
  CHECK_EQ(ExportAll(*b, {0}).n, 0);
}

// A single-column import with drop_absent leaves the other column of
// surviving pre-existing keys alone and gives new keys their default rows.
TEST(ImportDropAbsentSingleColumn) {
  const int64_t dim = 2, rows = 5;
  EmbeddingTable<int64_t> t(dim, rows, Defaults(rows, dim, 0));
  t.AddColumn(Defaults(rows, dim, 700));
  Lookup<int64_t>(t, {1, 2, 3}, true);
  t.Update(std::vector<int64_t>{2}.data(), 1, 5,
           [](int64_t, RecordView r) { r.column(1)[0] = 42; });
  const std::vector<int64_t> keys = {2, 4};
  const std::vector<float> vals = {9, 8, 7, 6};
  t.Import(keys.data(), 2, 0, vals.data(), nullptr, nullptr, true);
  std::map<int64_t, Rec> ref;
  ref[2].freq = 1;
  ref[2].version = 5;
  ref[2].cols = {{9, 8}, DefaultRow(2, rows, dim, 700)};
  ref[2].cols[1][0] = 42;
  ref[4].cols = {{7, 6}, DefaultRow(4, rows, dim, 700)};
  CheckPointLookups(t, ref);
  CheckExportMatches(ExportAll(t, {0, 1}), ref, {0, 1}, dim);
}

TEST(ImportInt32) {
  const int64_t dim = 1, rows = 2;
  EmbeddingTable<int32_t> t(dim, rows, Defaults(rows, dim, 0));
  const int32_t mn = std::numeric_limits<int32_t>::min();
  const int32_t mx = std::numeric_limits<int32_t>::max();
  Lookup<int32_t>(t, {5, 6}, true);
  const std::vector<int32_t> keys = {mn, mx, -1, 6};
  const std::vector<float> vals = {1, 2, 3, 4};
  const std::vector<int64_t> freqs = {1, 2, 3, 4};
  const std::vector<int64_t> versions = {5, 6, 7, 8};
  t.Import(keys.data(), 4, 0, vals.data(), freqs.data(), versions.data(), true);
  std::map<int32_t, Rec> ref;
  for (int i = 0; i < 4; ++i) {
    ref[keys[i]] = Rec{freqs[i], versions[i], {{vals[i]}}};
  }
  CheckPointLookups(t, ref);
  CheckExportMatches(ExportAll(t, {0}), ref, {0}, dim);
}

TEST(EraseAndReuse) {
  const int64_t dim = 2, rows = 4;
  EmbeddingTable<int64_t> t(dim, rows, Defaults(rows, dim, 0));
  t.AddColumn(Defaults(rows, dim, 100));
  std::vector<int64_t> keys;
  for (int64_t k = -500; k < 500; ++k) keys.push_back(k * 31);
  Lookup(t, keys, true);
  for (int64_t& k : keys) {
    t.Update(&k, 1, 3, [](int64_t, RecordView r) {
      r.column(0)[0] = -1;
      r.column(1)[1] = -2;
    });
  }
  const int64_t bytes_full = t.MemoryBytes();
  CHECK_EQ(t.size(), 1000);

  // Erase half; absent keys and duplicates count once.
  std::vector<int64_t> victims;
  for (size_t i = 0; i < keys.size(); i += 2) victims.push_back(keys[i]);
  std::vector<int64_t> request = victims;
  request.push_back(victims[0]);  // duplicate
  request.push_back(7777777);     // absent
  CHECK_EQ(t.Erase(request.data(), request.size()),
           static_cast<int64_t>(victims.size()));
  CHECK_EQ(t.size(), 500);
  CHECK_EQ(t.Erase(victims.data(), victims.size()), 0);
  for (int64_t k : victims) {
    CHECK_EQ(Freq(t, k), 0);
    CHECK_EQ(Version(t, k), -1);
    CHECK(FindRow(t, k, 0) == DefaultRow(k, rows, dim, 0));
    CHECK(FindRow(t, k, 1) == DefaultRow(k, rows, dim, 100));
  }
  CHECK_EQ(t.size(), 500);  // Find did not re-insert.
  // Survivors untouched.
  for (size_t i = 1; i < keys.size(); i += 2) {
    CHECK_EQ(Freq(t, keys[i]), 1);
    CHECK_EQ(Version(t, keys[i]), 3);
    std::vector<float> e0 = DefaultRow(keys[i], rows, dim, 0);
    std::vector<float> e1 = DefaultRow(keys[i], rows, dim, 100);
    e0[0] = -1;
    e1[1] = -2;
    CHECK(FindRow(t, keys[i], 0) == e0);
    CHECK(FindRow(t, keys[i], 1) == e1);
  }
  // Re-insert: freed records are reused (no growth), contents are fresh.
  Lookup(t, victims, true);
  CHECK_EQ(t.size(), 1000);
  CHECK_EQ(t.MemoryBytes(), bytes_full);
  for (int64_t k : victims) {
    CHECK_EQ(Freq(t, k), 1);
    CHECK_EQ(Version(t, k), -1);
    CHECK(FindRow(t, k, 0) == DefaultRow(k, rows, dim, 0));
    CHECK(FindRow(t, k, 1) == DefaultRow(k, rows, dim, 100));
  }
  // Erase everything and re-insert other keys: still consistent.
  CHECK_EQ(t.Erase(keys.data(), keys.size()), 1000);
  CHECK_EQ(t.size(), 0);
  CHECK_EQ(ExportAll(t, {0, 1}).n, 0);
  std::map<int64_t, Rec> ref;
  std::vector<int64_t> fresh;
  for (int64_t k = 0; k < 300; ++k) fresh.push_back(-k * 7 - 1);
  Lookup(t, fresh, true);
  for (int64_t k : fresh) {
    ref[k] = Rec{
        1, -1, {DefaultRow(k, rows, dim, 0), DefaultRow(k, rows, dim, 100)}};
  }
  CheckPointLookups(t, ref);
  CheckExportMatches(ExportAll(t, {0, 1}), ref, {0, 1}, dim);
}

// Enough keys for more than one record chunk per shard: repeated erase and
// re-insert cycles must not grow memory (freed records are reused).
TEST(FreedRecordsAreReused) {
  EmbeddingTable<int64_t> t(2, 3, Defaults(3, 2, 0));
  std::vector<int64_t> keys;
  for (int64_t k = 0; k < 20000; ++k) keys.push_back(k * 13 - 100000);
  Lookup(t, keys, true);
  const int64_t bytes = t.MemoryBytes();
  for (int round = 0; round < 3; ++round) {
    CHECK_EQ(t.Erase(keys.data(), keys.size()), 20000);
    CHECK_EQ(t.size(), 0);
    CHECK_EQ(t.MemoryBytes(), bytes);
    Lookup(t, keys, true);
    CHECK_EQ(t.size(), 20000);
    CHECK_EQ(t.MemoryBytes(), bytes);
  }
  for (int64_t k : {keys[0], keys[19999]}) {
    CHECK_EQ(Freq(t, k), 1);
    CHECK(FindRow(t, k, 0) == DefaultRow(k, 3, 2, 0));
  }
}

TEST(BadArgumentsThrow) {
  CHECK_THROWS(EmbeddingTable<int64_t>(0, 1, {}), std::invalid_argument);
  CHECK_THROWS(EmbeddingTable<int64_t>(-3, 1, {}), std::invalid_argument);
  CHECK_THROWS(EmbeddingTable<int64_t>(2, 0, {}), std::invalid_argument);
  CHECK_THROWS(EmbeddingTable<int64_t>(2, -1, {1, 2}), std::invalid_argument);
  CHECK_THROWS(EmbeddingTable<int64_t>(2, 2, {1, 2, 3}), std::invalid_argument);
  CHECK_THROWS(EmbeddingTable<int64_t>(2, 2, {1, 2, 3, 4, 5}),
               std::invalid_argument);
  CHECK_THROWS(EmbeddingTable<int32_t>(2, 1, {}), std::invalid_argument);

  EmbeddingTable<int64_t> t(2, 2, Defaults(2, 2, 0));
  CHECK_THROWS(t.AddColumn({1, 2, 3}), std::invalid_argument);
  CHECK_THROWS(t.AddColumn({}), std::invalid_argument);
  CHECK_EQ(t.num_columns(), 1);  // failed AddColumn changed nothing
  CHECK_EQ(t.AddColumn(Defaults(2, 2, 10)), 1);
  CHECK_EQ(t.num_columns(), 2);

  Lookup<int64_t>(t, {1, 2}, true);
  const int64_t key = 1;
  std::vector<float> out(2);
  CHECK_THROWS(t.Find(&key, 1, 2, out.data()), std::out_of_range);
  CHECK_THROWS(t.Find(&key, 1, -1, out.data()), std::out_of_range);
  CHECK_THROWS(ExportAll(t, {0, 2}), std::out_of_range);
  CHECK_THROWS(ExportAll(t, {-1}), std::out_of_range);
  const float vals[2] = {5, 6};
  CHECK_THROWS(t.Import(&key, 1, 2, vals, nullptr, nullptr, false),
               std::out_of_range);
  CHECK_THROWS(t.Import(&key, 1, -1, vals, nullptr, nullptr, true),
               std::out_of_range);
  // Failed calls left the table intact (and its locks released).
  CHECK_EQ(t.size(), 2);
  CHECK_EQ(Freq<int64_t>(t, 1), 1);
  CHECK(FindRow<int64_t>(t, 1, 0) == DefaultRow(1, 2, 2, 0));
  Lookup<int64_t>(t, {1, 3}, true);
  CHECK_EQ(t.size(), 3);
  CHECK_EQ(Freq<int64_t>(t, 1), 2);
}

int main() { return deeprec_test::RunAllTests(); }
