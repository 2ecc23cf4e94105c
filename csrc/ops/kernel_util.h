// Small helpers shared by the EmbeddingVariable kernels.
#ifndef DEEPREC_OPS_KERNEL_UTIL_H_
#define DEEPREC_OPS_KERNEL_UTIL_H_

#include <cstdint>
#include <exception>
#include <functional>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"

namespace deeprec {

// Runs fn(begin, end) over [0, n) on the op's intra-op thread pool.
inline void ParallelRange(tensorflow::OpKernelContext* ctx, int64_t n,
                          int64_t cost_per_unit,
                          const std::function<void(int64_t, int64_t)>& fn) {
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
