// SessionGroup (user guide §3.39): `session_num` sessions over one loaded
// model.
//
// Stock TensorFlow cannot make several DirectSessions share one set of
// variables (DeepRec patched DirectSession for that). Here every member runs
// the SAME DirectSession, the one holding the served model version, so each
// variable and EmbeddingVariable table exists once by construction. A
// member is a pair of thread pools handed to Session::Run through
// ThreadPoolOptions: the inter-op pool runs the step's ops, the intra-op
// pool their parallel work (TensorFlow wraps the device with it for that
// step). Without use_per_session_threads every member runs on the session's
// own pools, as DeepRec's sessions then share theirs. The pools outlive
// model versions: a new version runs on the same members.

#ifndef SERVING_PROCESSOR_SERVING_SESSION_GROUP_H_
#define SERVING_PROCESSOR_SERVING_SESSION_GROUP_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "serving/processor/serving/model_config.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/platform/status.h"
#include "tensorflow/core/platform/threadpool.h"
#include "tensorflow/core/platform/threadpool_interface.h"
#include "tensorflow/core/platform/threadpool_options.h"
#include "tensorflow/core/protobuf/config.pb.h"
#include "tensorflow/core/public/session.h"

namespace deeprec {
namespace processor {

class SessionGroup {
 public:
  // Builds config.session_num members.
  explicit SessionGroup(const ModelConfig& config);

  SessionGroup(const SessionGroup&) = delete;
  SessionGroup& operator=(const SessionGroup&) = delete;

  int size() const { return static_cast<int>(members_.size()); }

  // The member for the calling request: round robin, or the calling
  // thread's id modulo size() (select_session_policy).
  int Select();

  // session->Run on member `member`'s thread pools.
  tensorflow::Status Run(
      int member, tensorflow::Session* session,
      const tensorflow::RunOptions& run_options,
      const std::vector<std::pair<std::string, tensorflow::Tensor>>& inputs,
      const std::vector<std::string>& output_names,
      std::vector<tensorflow::Tensor>* outputs,
      tensorflow::RunMetadata* run_metadata);

 private:
  // Session::Run takes tsl's ThreadPoolInterface, which a ThreadPool's
  // Eigen pool is not: this forwards to one.
  class Pool : public tensorflow::thread::ThreadPoolInterface {
   public:
    Pool(tensorflow::Env* env, const std::string& name, int num_threads);

    void Schedule(std::function<void()> fn) override;
    void ScheduleWithHint(std::function<void()> fn, int start,
                          int limit) override;
    void Cancel() override;
    int NumThreads() const override;
    int CurrentThreadId() const override;

   private:
    tensorflow::thread::ThreadPool pool_;
    Eigen::ThreadPoolInterface* const eigen_;
  };

  struct Member {
    std::unique_ptr<tensorflow::Env> env;  // Names and pins the threads.
    std::unique_ptr<Pool> inter_op;
    std::unique_ptr<Pool> intra_op;
    tensorflow::thread::ThreadPoolOptions pools;  // Null pools: the session's.
  };

  const SessionPolicy policy_;
  std::atomic<uint64_t> next_{0};
  std::vector<Member> members_;
};

}  // namespace processor
}  // namespace deeprec

#endif  // SERVING_PROCESSOR_SERVING_SESSION_GROUP_H_
