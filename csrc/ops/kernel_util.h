// Small helpers shared by the EmbeddingVariable kernels.
#ifndef DEEPREC_OPS_KERNEL_UTIL_H_
#define DEEPREC_OPS_KERNEL_UTIL_H_

#include <cstdint>
#include <exception>
#include <functional>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"

namespace deeprec {

// Work below this many estimated cycles runs on the calling thread.
// tensorflow::Shard splits from 10,000, but an op's batch of a few hundred
// ids (~100k cycles) then waits for pool threads that the inter-op executor
// is already keeping busy with other tables' ops: in WDL at 2 threads the
// per-table EV ops cost more CPU split than whole.
constexpr int64_t kMinParallelCost = int64_t{1} << 18;

// Runs fn(begin, end) over [0, n) on the op's intra-op thread pool, or
// inline when the whole range is estimated below kMinParallelCost.
inline void ParallelRange(tensorflow::OpKernelContext* ctx, int64_t n,
                          int64_t cost_per_unit,
                          const std::function<void(int64_t, int64_t)>& fn) {
  if (n * cost_per_unit < kMinParallelCost) {
    if (n > 0) fn(0, n);
    return;
  }
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, n, cost_per_unit,
                    fn);
}

// An engine Runner on the op's intra-op thread pool. Engine batch operations
// run one task per table shard; `cost_per_task` (cycles) guides the split.
inline std::function<void(int64_t,
                          const std::function<void(int64_t, int64_t)>&)>
PoolRunner(tensorflow::OpKernelContext* ctx, int64_t cost_per_task) {
  return [ctx, cost_per_task](int64_t tasks,
                              const std::function<void(int64_t, int64_t)>& fn) {
    ParallelRange(ctx, tasks, cost_per_task, fn);
  };
}

// Estimated cycles of one shard's share of an n-key batch with `floats`
// floats touched per key.
inline int64_t ShardTaskCost(int64_t n, int64_t floats) {
  return (n / 64 + 1) * (200 + 4 * floats);
}

// Converts an engine exception into an InvalidArgument naming the op.
inline tensorflow::Status EngineError(tensorflow::OpKernelContext* ctx,
                                      const std::exception& e) {
  return tensorflow::errors::InvalidArgument(ctx->op_kernel().type_string(),
                                             ": ", e.what());
}

}  // namespace deeprec

#endif  // DEEPREC_OPS_KERNEL_UTIL_H_
