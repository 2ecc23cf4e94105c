// Timeline collection (user guide §3.38.5): the step stats of chosen
// requests, written as Chrome trace JSON (chrome://tracing, Perfetto)
// directly, where DeepRec wrote RunMetadata protos for a separate converter.

#ifndef SERVING_PROCESSOR_SERVING_TIMELINE_H_
#define SERVING_PROCESSOR_SERVING_TIMELINE_H_

#include <cstdint>
#include <string>

#include "serving/processor/serving/model_config.h"
#include "tensorflow/core/framework/step_stats.pb.h"
#include "tensorflow/core/platform/status.h"

namespace deeprec {
namespace processor {

class Timeline {
 public:
  explicit Timeline(const ModelConfig& config);

  // Whether request number `step` (counting from 1) is traced: steps
  // timeline_start_step + k * timeline_interval_step for
  // k < timeline_trace_count.
  bool ShouldTrace(int64_t step) const;

  // Writes `stats` to <timeline_path>/timeline_<step>.json.
  tensorflow::Status Write(int64_t step,
                           const tensorflow::StepStats& stats) const;

 private:
  const int64_t start_;
  const int64_t interval_;
  const int64_t count_;
  const std::string path_;
};

// The Chrome trace of one step: a process per device, a thread per executor
// thread, a complete event ("ph": "X") per op.
std::string ChromeTrace(const tensorflow::StepStats& stats);

}  // namespace processor
}  // namespace deeprec

#endif  // SERVING_PROCESSOR_SERVING_TIMELINE_H_
