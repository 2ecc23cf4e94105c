// Multi-threaded stress test of EmbeddingTable: 8 threads for a bounded time
// (DEEPREC_STRESS_SECONDS, default 1.5) run LookupOrInsert, Update (Adagrad,
// then Adam once its slot columns exist), Find, GetFrequency/GetVersion,
// Export, Import, Erase, size/MemoryBytes, while one thread adds two columns
// mid-run. Meant to be run under ThreadSanitizer as well as plainly.
//
// Key spaces (all disjoint, each with negative keys):
//   A  shared by all threads, never erased: counted lookups, optimizer
//      updates. Reference: per-thread occurrence counts.
//   C  a few shared counter keys: Update adds exactly 1.0 to column 0.
//   B  one private range per thread: only the owner inserts, imports,
//      erases; the others only read. Reference: the owner's exact model.
//   D  shared churn: everyone inserts and erases. No exact reference; only
//      structural checks.
// Afterwards the table must match the references exactly.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "csrc/embedding/embedding_table.h"
#include "csrc/embedding/optimizer_math.h"
#include "csrc/embedding/tests/check.h"

using deeprec::embedding::Bucket;
using deeprec::embedding::EmbeddingTable;
using deeprec::embedding::kNumBuckets;
using deeprec::embedding::RecordView;

namespace {

constexpr int kThreads = 8;
constexpr int64_t kDim = 4;
constexpr int64_t kRows = 8;  // default_value_dim
constexpr int kFinalColumns = 4;

constexpr int64_t kNumA = 2000;  // A = [-1000, 1000)
constexpr int64_t kABase = -1000;
constexpr int64_t kNumC = 16;
constexpr int64_t kCBase = 1000000000LL;
constexpr int64_t kNumB = 400;  // per thread
constexpr int64_t kNumD = 300;
constexpr int64_t kDBase = 5000000000000LL;
// Keys (kProbeBase - 1000, kProbeBase] are only ever read, never inserted.
constexpr int64_t kProbeBase = -777000000000LL;

int64_t AKey(int64_t i) { return kABase + i; }
int64_t CKey(int64_t i) { return kCBase + i; }
// Alternating signs so every B range has negative keys.
int64_t BKey(int t, int64_t i) {
  const int64_t base = 100000000LL * (t + 1) + i / 2;
  return i % 2 ? -base : base;
}
int64_t DKey(int64_t i) { return i % 2 ? -(kDBase + i) : kDBase + i; }

enum class Space { kA, kB, kC, kD, kNone };

Space Classify(int64_t key, int* owner, int64_t* index) {
  if (key >= kABase && key < kABase + kNumA) {
    *index = key - kABase;
    return Space::kA;
  }
  if (key >= kCBase && key < kCBase + kNumC) {
    *index = key - kCBase;
    return Space::kC;
  }
  const int64_t a = key < 0 ? -key : key;
  if (a >= kDBase && a < kDBase + kNumD) {
    *index = a - kDBase;
    return (*index % 2 == 1) == (key < 0) ? Space::kD : Space::kNone;
  }
  for (int t = 0; t < kThreads; ++t) {
    const int64_t base = 100000000LL * (t + 1);
    if (a >= base && a < base + kNumB / 2) {
      *owner = t;
      *index = (a - base) * 2 + (key < 0 ? 1 : 0);
      return Space::kB;
    }
  }
  return Space::kNone;
}

float ColumnBase(int c) { return 1000.0f * c; }

std::vector<float> Defaults(int c) {
  std::vector<float> v(kRows * kDim);
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t d = 0; d < kDim; ++d) {
      // Column 1 is an Adagrad accumulator: keep it positive and small.
      v[r * kDim + d] = c == 1 ? 0.1f + 0.01f * r : ColumnBase(c) + r * 10 + d;
    }
  }
  return v;
}

std::vector<float> DefaultRow(int c, int64_t key) {
  const std::vector<float> all = Defaults(c);
  int64_t r = key % kRows;
  if (r < 0) r += kRows;
  return std::vector<float>(all.begin() + r * kDim,
                            all.begin() + (r + 1) * kDim);
}

// What the owner of a B key knows about it.
struct BState {
  bool live = false;
  int64_t freq = 0;
  int64_t version = -1;
  std::vector<float> col0;  // empty: default row
};

struct ThreadResult {
  std::vector<int64_t> a_counts = std::vector<int64_t>(kNumA, 0);
  std::vector<bool> a_touched = std::vector<bool>(kNumA, false);
  std::vector<int64_t> c_adds = std::vector<int64_t>(kNumC, 0);
  std::vector<BState> b = std::vector<BState>(kNumB);
  int64_t ops = 0;
  int64_t exports = 0;
};

// A consistent snapshot must have the bucket layout, unique keys from the
// known key spaces, finite values, and per thread monotone A frequencies.
void CheckSnapshot(const std::vector<int64_t>& keys,
                   const std::vector<int64_t>& freqs,
                   const std::vector<std::vector<float>>& cols,
                   const std::vector<int64_t>& offsets,
                   const ThreadResult& mine) {
  const int64_t n = keys.size();
  CHECK_EQ(offsets[0], 0);
  CHECK_EQ(offsets[kNumBuckets], n);
  for (int64_t b = 0; b < kNumBuckets; ++b) {
    CHECK_LE(offsets[b], offsets[b + 1]);
    for (int64_t row = offsets[b]; row < offsets[b + 1] && row < n; ++row) {
      CHECK_EQ(Bucket(keys[row]), b);
    }
  }
  std::set<int64_t> unique(keys.begin(), keys.end());
  CHECK_EQ(static_cast<int64_t>(unique.size()), n);
  for (int64_t row = 0; row < n; ++row) {
    int owner = -1;
    int64_t index = -1;
    const Space space = Classify(keys[row], &owner, &index);
    CHECK(space != Space::kNone);
    CHECK_GE(freqs[row], 0);
    if (space == Space::kA) CHECK_GE(freqs[row], mine.a_counts[index]);
    for (const std::vector<float>& col : cols) {
      for (int64_t d = 0; d < kDim; ++d)
        CHECK(std::isfinite(col[row * kDim + d]));
    }
  }
}

void Worker(EmbeddingTable<int64_t>* table, int t, double seconds,
            std::atomic<int>* columns_ready, std::atomic<bool>* go,
            ThreadResult* res) {
  std::mt19937_64 rng(1234 + t);
  auto uniform = [&](int64_t n) { return static_cast<int64_t>(rng() % n); };
  while (!go->load()) std::this_thread::yield();
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  int adds_done = 0;
  int64_t step = 0;
  std::vector<int64_t> keys;
  std::vector<float> out;
  while (true) {
    const double now = elapsed();
    if (t == 0 && adds_done < 2 && now >= seconds * (adds_done + 1) / 3) {
      const int c = table->AddColumn(Defaults(2 + adds_done));
      CHECK_EQ(c, 2 + adds_done);
      columns_ready->store(c + 1);
      ++adds_done;
    }
    if (now >= seconds && (t != 0 || adds_done == 2)) break;
    ++step;
    ++res->ops;
    const int columns = columns_ready->load();
    const int batch = 1 + static_cast<int>(uniform(16));
    const int64_t op = uniform(100);
    keys.clear();
    if (op < 30) {
      // Counted lookups of A keys (with duplicates); check monotonicity.
      for (int i = 0; i < batch; ++i) keys.push_back(AKey(uniform(kNumA)));
      if (uniform(4) == 0) keys.push_back(keys[0]);
      const bool count = uniform(5) != 0;
      out.assign(keys.size() * kDim, 0);
      table->LookupOrInsert(keys.data(), keys.size(), out.data(), count);
      for (int64_t k : keys) {
        res->a_touched[k - kABase] = true;
        if (count) ++res->a_counts[k - kABase];
      }
      for (float v : out) CHECK(std::isfinite(v));
      std::vector<int64_t> f(keys.size());
      table->GetFrequency(keys.data(), keys.size(), f.data());
      for (size_t i = 0; i < keys.size(); ++i) {
        CHECK_GE(f[i], res->a_counts[keys[i] - kABase]);
      }
    } else if (op < 45) {
      // Optimizer updates of A keys: Adagrad on (0, 1), Adam on (0, 2, 3)
      // once the slots exist.
      for (int i = 0; i < batch; ++i) keys.push_back(AKey(uniform(kNumA)));
      std::vector<float> grads(keys.size() * kDim);
      for (float& g : grads)
        g = static_cast<float>(uniform(2001) - 1000) / 1000.0f;
      const bool adam = columns >= 4 && uniform(2) == 0;
      table->Update(
          keys.data(), keys.size(), step, [&](int64_t i, RecordView r) {
            CHECK_EQ(r.version(), step);
            if (adam) {
              deeprec::embedding::ApplyAdam(
                  r.column(0), r.column(2), r.column(3),
                  grads.data() + i * kDim, kDim, 0.001f, 0.9f, 0.999f, 1e-8f);
            } else {
              deeprec::embedding::ApplyAdagrad(r.column(0), r.column(1),
                                               grads.data() + i * kDim, kDim,
                                               0.01f);
            }
          });
      for (int64_t k : keys) res->a_touched[k - kABase] = true;
    } else if (op < 50) {
      // Exact counters.
      const int64_t i = uniform(kNumC);
      keys.push_back(CKey(i));
      table->Update(keys.data(), 1, -1,
                    [](int64_t, RecordView r) { r.column(0)[0] += 1.0f; });
      ++res->c_adds[i];
    } else if (op < 62) {
      // Reads of any space, any available column; Find must not insert, so
      // probe some keys that are never inserted too.
      for (int i = 0; i < batch; ++i) {
        switch (uniform(4)) {
          case 0:
            keys.push_back(AKey(uniform(kNumA)));
            break;
          case 1:
            keys.push_back(BKey(uniform(kThreads), uniform(kNumB)));
            break;
          case 2:
            keys.push_back(DKey(uniform(kNumD)));
            break;
          default:
            keys.push_back(kProbeBase - uniform(1000));
            break;
        }
      }
      const int column = static_cast<int>(uniform(columns));
      out.assign(keys.size() * kDim, 0);
      table->Find(keys.data(), keys.size(), column, out.data());
      for (float v : out) CHECK(std::isfinite(v));
      std::vector<int64_t> f(keys.size()), v(keys.size());
      table->GetFrequency(keys.data(), keys.size(), f.data());
      table->GetVersion(keys.data(), keys.size(), v.data());
      for (size_t i = 0; i < keys.size(); ++i) {
        CHECK_GE(f[i], 0);
        CHECK_GE(v[i], -1);
        if (keys[i] <= kProbeBase && keys[i] > kProbeBase - 1000) {
          CHECK_EQ(f[i], 0);
          CHECK_EQ(v[i], -1);
          const std::vector<float> def = DefaultRow(column, keys[i]);
          for (int64_t d = 0; d < kDim; ++d)
            CHECK_EQ(out[i * kDim + d], def[d]);
        }
      }
    } else if (op < 80) {
      // Owner operations on this thread's B range, checked exactly.
      const int64_t i = uniform(kNumB);
      const int64_t key = BKey(t, i);
      BState& s = res->b[i];
      const int64_t what = uniform(10);
      if (what < 5) {
        const int reps = 1 + static_cast<int>(uniform(3));
        std::vector<int64_t> ks(reps, key);
        out.assign(reps * kDim, 0);
        table->LookupOrInsert(ks.data(), reps, out.data(), true);
        if (!s.live) s = BState{true, 0, -1, {}};
        s.freq += reps;
        const std::vector<float> expect =
            s.col0.empty() ? DefaultRow(0, key) : s.col0;
        for (int r = 0; r < reps; ++r) {
          for (int64_t d = 0; d < kDim; ++d) {
            CHECK_EQ(out[r * kDim + d], expect[d]);
          }
        }
      } else if (what < 8) {
        CHECK_EQ(table->Erase(&key, 1), s.live ? 1 : 0);
        s = BState{};
      } else {
        // Import column 0 with explicit freq and version (merge, not drop).
        std::vector<float> vals(kDim);
        for (int64_t d = 0; d < kDim; ++d) {
          vals[d] = static_cast<float>(step % 1000) + 0.25f * d;
        }
        const int64_t freq = uniform(50), version = step;
        table->Import(&key, 1, 0, vals.data(), &freq, &version, false);
        s.live = true;
        s.freq = freq;
        s.version = version;
        s.col0 = vals;
      }
      int64_t f = -5, v = -5;
      table->GetFrequency(&key, 1, &f);
      table->GetVersion(&key, 1, &v);
      CHECK_EQ(f, s.live ? s.freq : 0);
      CHECK_EQ(v, s.live ? s.version : -1);
    } else if (op < 94) {
      // Churn on D.
      for (int i = 0; i < batch; ++i) keys.push_back(DKey(uniform(kNumD)));
      if (uniform(2) == 0) {
        out.assign(keys.size() * kDim, 0);
        table->LookupOrInsert(keys.data(), keys.size(), out.data(),
                              uniform(2) == 0);
      } else {
        const int64_t removed = table->Erase(keys.data(), keys.size());
        CHECK_GE(removed, 0);
        CHECK_LE(removed, static_cast<int64_t>(keys.size()));
      }
    } else if (op < 97) {
      CHECK_GE(table->size(), 0);
      CHECK_GE(table->MemoryBytes(), 0);
      CHECK_GE(table->num_columns(), columns);
    } else {
      // Consistent snapshot of everything.
      std::vector<int> export_cols;
      for (int c = 0; c < columns; ++c) export_cols.push_back(c);
      std::vector<int64_t> ekeys, efreqs, eversions;
      std::vector<std::vector<float>> ecols(export_cols.size());
      std::vector<int64_t> offsets(kNumBuckets + 1, -1);
      table->Export(
          export_cols,
          [&](int64_t n, int64_t) {
            EmbeddingTable<int64_t>::ExportBuffers b;
            ekeys.assign(n, 0);
            efreqs.assign(n, -1);
            eversions.assign(n, -2);
            b.keys = ekeys.data();
            b.freqs = efreqs.data();
            b.versions = eversions.data();
            for (size_t j = 0; j < ecols.size(); ++j) {
              ecols[j].assign(n * kDim, NAN);
              b.columns.push_back(ecols[j].data());
            }
            return b;
          },
          offsets.data());
      CheckSnapshot(ekeys, efreqs, ecols, offsets, *res);
      // This thread's B keys are exactly as the owner knows them.
      int64_t mine = 0, live = 0;
      for (const BState& s : res->b) live += s.live ? 1 : 0;
      for (size_t row = 0; row < ekeys.size(); ++row) {
        int owner = -1;
        int64_t index = -1;
        if (Classify(ekeys[row], &owner, &index) == Space::kB && owner == t) {
          ++mine;
          const BState& s = res->b[index];
          CHECK(s.live);
          CHECK_EQ(efreqs[row], s.freq);
          CHECK_EQ(eversions[row], s.version);
        }
      }
      CHECK_EQ(mine, live);
      ++res->exports;
    }
  }
}

}  // namespace

TEST(ConcurrentStress) {
  double seconds = 1.5;
  if (const char* env = std::getenv("DEEPREC_STRESS_SECONDS")) {
    seconds = std::atof(env);
  }
  EmbeddingTable<int64_t> table(kDim, kRows, Defaults(0));
  CHECK_EQ(table.AddColumn(Defaults(1)), 1);
  std::atomic<int> columns_ready{2};
  std::atomic<bool> go{false};
  std::vector<ThreadResult> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back(Worker, &table, t, seconds, &columns_ready, &go,
                         &results[t]);
  }
  go.store(true);
  for (std::thread& th : threads) th.join();

  int64_t total_ops = 0, total_exports = 0;
  for (const ThreadResult& r : results) {
    total_ops += r.ops;
    total_exports += r.exports;
  }
  std::printf("  %lld ops, %lld exports in %.2f s, final size %lld\n",
              static_cast<long long>(total_ops),
              static_cast<long long>(total_exports), seconds,
              static_cast<long long>(table.size()));
  CHECK_EQ(table.num_columns(), kFinalColumns);
  CHECK_GE(total_exports, 1);

  // Merge the references.
  std::vector<int64_t> a_counts(kNumA, 0);
  std::vector<bool> a_touched(kNumA, false);
  std::vector<int64_t> c_adds(kNumC, 0);
  for (const ThreadResult& r : results) {
    for (int64_t i = 0; i < kNumA; ++i) {
      a_counts[i] += r.a_counts[i];
      if (r.a_touched[i]) a_touched[i] = true;
    }
    for (int64_t i = 0; i < kNumC; ++i) c_adds[i] += r.c_adds[i];
  }

  // Full export of the final table.
  std::vector<int> all_cols = {0, 1, 2, 3};
  std::vector<int64_t> keys, freqs, versions;
  std::vector<std::vector<float>> cols(4);
  std::vector<int64_t> offsets(kNumBuckets + 1, -1);
  table.Export(
      all_cols,
      [&](int64_t n, int64_t) {
        EmbeddingTable<int64_t>::ExportBuffers b;
        keys.assign(n, 0);
        freqs.assign(n, -1);
        versions.assign(n, -2);
        b.keys = keys.data();
        b.freqs = freqs.data();
        b.versions = versions.data();
        for (auto& c : cols) {
          c.assign(n * kDim, NAN);
          b.columns.push_back(c.data());
        }
        return b;
      },
      offsets.data());
  ThreadResult none;
  CheckSnapshot(keys, freqs, cols, offsets, none);
  CHECK_EQ(static_cast<int64_t>(keys.size()), table.size());

  int64_t seen_a = 0, seen_c = 0, seen_b = 0;
  std::vector<int64_t> d_live;
  for (size_t row = 0; row < keys.size(); ++row) {
    int owner = -1;
    int64_t index = -1;
    const int64_t key = keys[row];
    switch (Classify(key, &owner, &index)) {
      case Space::kA:
        ++seen_a;
        CHECK(a_touched[index]);
        CHECK_EQ(freqs[row], a_counts[index]);
        break;
      case Space::kC: {
        ++seen_c;
        std::vector<float> expect = DefaultRow(0, key);
        expect[0] += static_cast<float>(c_adds[index]);
        for (int64_t d = 0; d < kDim; ++d) {
          CHECK_EQ(cols[0][row * kDim + d], expect[d]);
        }
        CHECK_EQ(freqs[row], 0);
        CHECK_EQ(versions[row], -1);
        break;
      }
      case Space::kB: {
        ++seen_b;
        const BState& s = results[owner].b[index];
        CHECK(s.live);
        CHECK_EQ(freqs[row], s.freq);
        CHECK_EQ(versions[row], s.version);
        const std::vector<float> col0 =
            s.col0.empty() ? DefaultRow(0, key) : s.col0;
        for (int c = 0; c < 4; ++c) {
          const std::vector<float> expect = c == 0 ? col0 : DefaultRow(c, key);
          for (int64_t d = 0; d < kDim; ++d) {
            CHECK_EQ(cols[c][row * kDim + d], expect[d]);
          }
        }
        break;
      }
      case Space::kD:
        d_live.push_back(key);
        break;
      case Space::kNone:
        CHECK(false);
        break;
    }
  }
  int64_t expect_a = 0, expect_b = 0;
  for (int64_t i = 0; i < kNumA; ++i) expect_a += a_touched[i] ? 1 : 0;
  for (const ThreadResult& r : results) {
    for (const BState& s : r.b) expect_b += s.live ? 1 : 0;
  }
  CHECK_EQ(seen_a, expect_a);
  CHECK_EQ(seen_b, expect_b);
  int64_t expect_c = 0;
  for (int64_t i = 0; i < kNumC; ++i) expect_c += c_adds[i] > 0 ? 1 : 0;
  CHECK_EQ(seen_c, expect_c);
  // Point reads agree with the export.
  for (size_t row = 0; row < keys.size(); row += 7) {
    int64_t f = -5, v = -5;
    table.GetFrequency(&keys[row], 1, &f);
    table.GetVersion(&keys[row], 1, &v);
    CHECK_EQ(f, freqs[row]);
    CHECK_EQ(v, versions[row]);
    std::vector<float> out(kDim);
    for (int c = 0; c < 4; ++c) {
      table.Find(&keys[row], 1, c, out.data());
      for (int64_t d = 0; d < kDim; ++d) {
        CHECK_EQ(out[d], cols[c][row * kDim + d]);
      }
    }
  }
  // Removing the churn keys leaves exactly the reference population.
  std::vector<int64_t> all_d;
  for (int64_t i = 0; i < kNumD; ++i) all_d.push_back(DKey(i));
  CHECK_EQ(table.Erase(all_d.data(), all_d.size()),
           static_cast<int64_t>(d_live.size()));
  CHECK_EQ(table.size(), expect_a + expect_b + expect_c);
}

int main() { return deeprec_test::RunAllTests(); }
