// One served model: the SavedModel's "serve" graph in a SessionGroup, its
// variables restored from the newest checkpoint (or the SavedModel's own),
// answering PredictRequests.

#ifndef SERVING_PROCESSOR_SERVING_MODEL_H_
#define SERVING_PROCESSOR_SERVING_MODEL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "serving/processor/serving/model_config.h"
#include "serving/processor/serving/predict.pb.h"
#include "serving/processor/serving/session_group.h"
#include "serving/processor/serving/timeline.h"
#include "tensorflow/core/platform/status.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"

namespace deeprec {
namespace processor {

class Model {
 public:
  // Loads the model `config` describes and runs its warmup request, if any.
  static tensorflow::Status Create(const ModelConfig& config,
                                   std::unique_ptr<Model>* model);

  // Runs `request` on the member of the session group the policy picks.
  // Bad requests are InvalidArgument errors naming the input or output.
  // Thread-safe.
  tensorflow::Status Predict(const tensorflow::eas::PredictRequest& request,
                             tensorflow::eas::PredictResponse* response);

  // The checkpoint (or SavedModel directory) the variables came from.
  const std::string& model_path() const { return model_path_; }

 private:
  Model(const ModelConfig& config, tensorflow::MetaGraphDef meta_graph,
        std::string model_path, std::unique_ptr<SessionGroup> group);

  // Predict on group member `member`; traces the step into the timeline
  // when `trace_step` > 0.
  tensorflow::Status Run(int member,
                         const tensorflow::eas::PredictRequest& request,
                         tensorflow::eas::PredictResponse* response,
                         int64_t trace_step);

  // Runs the warmup request once on every member.
  tensorflow::Status Warmup(const std::string& path);

  const ModelConfig config_;
  const tensorflow::MetaGraphDef meta_graph_;
  const std::string model_path_;
  const std::unique_ptr<SessionGroup> group_;
  const Timeline timeline_;
  std::atomic<int64_t> steps_{0};
};

}  // namespace processor
}  // namespace deeprec

#endif  // SERVING_PROCESSOR_SERVING_MODEL_H_
