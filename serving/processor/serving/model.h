// One served model: the SavedModel's "serve" graph with its variables from
// the newest checkpoint version (or the SavedModel's own), run by a
// SessionGroup, answering PredictRequests. With a checkpoint_dir, a newer
// version appearing later (or the served one disappearing, a rollback) is
// loaded into a new session in the background, warmed up and swapped in:
// each request runs wholly on one version, and none waits for a load.

#ifndef SERVING_PROCESSOR_SERVING_MODEL_H_
#define SERVING_PROCESSOR_SERVING_MODEL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "serving/processor/serving/model_config.h"
#include "serving/processor/serving/model_store.h"
#include "serving/processor/serving/predict.pb.h"
#include "serving/processor/serving/session_group.h"
#include "serving/processor/serving/timeline.h"
#include "tensorflow/core/platform/status.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/public/session.h"

namespace deeprec {
namespace processor {

class Model {
 public:
  // Loads the model `config` describes and runs its warmup request, if any.
  static tensorflow::Status Create(const ModelConfig& config,
                                   std::unique_ptr<Model>* model);
  ~Model();

  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Runs `request` on the member of the session group the policy picks.
  // Bad requests are InvalidArgument errors naming the input or output.
  // Thread-safe.
  tensorflow::Status Predict(const tensorflow::eas::PredictRequest& request,
                             tensorflow::eas::PredictResponse* response);

  // The checkpoint (or SavedModel directory) whose variables are served.
  std::string model_path() const;

 private:
  // A loaded model version: a session holding the graph and its variables.
  struct Version {
    ~Version();

    CheckpointVersion checkpoint;  // Empty prefix: the SavedModel's own.
    std::string model_path;
    std::unique_ptr<tensorflow::Session> session;
  };

  Model(const ModelConfig& config, tensorflow::MetaGraphDef meta_graph,
        std::optional<tensorflow::eas::PredictRequest> warmup);

  // A session with `checkpoint` restored into the graph, warmed up.
  tensorflow::Status Load(const CheckpointVersion& checkpoint,
                          std::shared_ptr<const Version>* version);

  // Predict on `version` with group member `member`; traces the step into
  // the timeline when `trace_step` > 0.
  tensorflow::Status Run(int member, const Version& version,
                         const tensorflow::eas::PredictRequest& request,
                         tensorflow::eas::PredictResponse* response,
                         int64_t trace_step);

  std::shared_ptr<const Version> current() const;

  // The background thread: polls checkpoint_dir and swaps versions.
  void WatchCheckpoints();
  void UpdateOnce();

  const ModelConfig config_;
  const tensorflow::MetaGraphDef meta_graph_;
  const std::optional<tensorflow::eas::PredictRequest> warmup_;
  const Timeline timeline_;
  // Declared before the versions, whose sessions run on its pools.
  SessionGroup group_;
  std::atomic<int64_t> steps_{0};

  mutable std::mutex mu_;
  std::shared_ptr<const Version> current_;  // Guarded by mu_.
  bool stopping_ = false;                   // Guarded by mu_.
  std::condition_variable stop_;

  // Touched by the watcher thread only.
  CheckpointVersion failed_;  // The last version that failed to load.
  std::thread watcher_;
};

}  // namespace processor
}  // namespace deeprec

#endif  // SERVING_PROCESSOR_SERVING_MODEL_H_
