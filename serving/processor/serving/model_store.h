// Finding checkpoint versions in a local checkpoint_dir (user guide §3.38.3,
// "Model path configuration").

#ifndef SERVING_PROCESSOR_SERVING_MODEL_STORE_H_
#define SERVING_PROCESSOR_SERVING_MODEL_STORE_H_

#include <cstdint>
#include <string>

#include "tensorflow/core/platform/status.h"

namespace deeprec {
namespace processor {

// One checkpoint version: its prefix and when its .index was written (a
// checkpoint saved again under the same prefix is a new version).
struct CheckpointVersion {
  std::string prefix;
  int64_t mtime_nsec = -1;

  bool operator==(const CheckpointVersion& other) const {
    return prefix == other.prefix && mtime_nsec == other.mtime_nsec;
  }
  bool operator!=(const CheckpointVersion& other) const {
    return !(*this == other);
  }
};

// The newest checkpoint under `checkpoint_dir`: each of `checkpoint_dir` and
// its immediate subdirectories (checkpoint_1/, checkpoint_2/, ...) may hold a
// TensorFlow "checkpoint" state file naming its latest checkpoint; of those
// whose .index exists, the one written last wins. A writer updates the state
// file after the checkpoint's files, so a half-written checkpoint is never
// picked. NotFound when there is none.
tensorflow::Status LatestCheckpoint(const std::string& checkpoint_dir,
                                    CheckpointVersion* version);

}  // namespace processor
}  // namespace deeprec

#endif  // SERVING_PROCESSOR_SERVING_MODEL_STORE_H_
