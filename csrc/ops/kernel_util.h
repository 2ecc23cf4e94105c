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

// Converts an engine exception into an InvalidArgument naming the op.
inline tensorflow::Status EngineError(tensorflow::OpKernelContext* ctx,
                                      const std::exception& e) {
  return tensorflow::errors::InvalidArgument(ctx->op_kernel().type_string(),
                                             ": ", e.what());
}

}  // namespace deeprec

#endif  // DEEPREC_OPS_KERNEL_UTIL_H_
