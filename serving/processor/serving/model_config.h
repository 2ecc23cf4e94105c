// The processor's model_config: the JSON object passed to initialize()
// (user guide §3.38.3, "Configure file"), parsed and checked.

#ifndef SERVING_PROCESSOR_SERVING_MODEL_CONFIG_H_
#define SERVING_PROCESSOR_SERVING_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "tensorflow/core/platform/status.h"

namespace deeprec {
namespace processor {

enum class SessionPolicy {
  kRoundRobin,  // "RR": each request takes the next session.
  kMod,         // "MOD": the calling thread's id modulo session_num.
};

struct ModelConfig {
  int session_num = 1;
  SessionPolicy select_session_policy = SessionPolicy::kRoundRobin;
  bool use_per_session_threads = false;
  // One CPU list per session (empty: no pinning).
  std::vector<std::vector<int>> cpusets;
  // 0 lets TensorFlow choose (the number of cores).
  int inter_op_parallelism_threads = 0;
  int intra_op_parallelism_threads = 0;
  std::string signature_name = "serving_default";
  std::string warmup_file_name;
  std::string savedmodel_dir;
  std::string checkpoint_dir;
  double init_timeout_minutes = 1.0;
  // Timelines are written when timeline_trace_count > 0.
  int64_t timeline_start_step = 1;
  int64_t timeline_interval_step = 1;
  int64_t timeline_trace_count = 0;
  std::string timeline_path;
};

// Parses `json` (a JSON object) into `config`. Unknown keys, keys that need a
// service this processor does not provide (OSS, HDFS, Redis, GPUs) and bad
// values are InvalidArgument errors naming the key and the value.
tensorflow::Status ParseModelConfig(const std::string& json,
                                    ModelConfig* config);

}  // namespace processor
}  // namespace deeprec

#endif  // SERVING_PROCESSOR_SERVING_MODEL_CONFIG_H_
