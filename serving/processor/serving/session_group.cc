#include "serving/processor/serving/session_group.h"

#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

namespace deeprec {
namespace processor {
namespace {

// An Env whose new threads carry their pool's name (as `top -H` and
// /proc/<pid>/task/*/comm show it) and, given CPUs, run only on those: the
// pools of a member built on it are pinned from their first instruction.
class MemberEnv : public tensorflow::EnvWrapper {
 public:
  explicit MemberEnv(const std::vector<int>& cpus)
      : tensorflow::EnvWrapper(tensorflow::Env::Default()),
        pinned_(!cpus.empty()) {
    CPU_ZERO(&cpus_);
    for (int cpu : cpus) CPU_SET(cpu, &cpus_);
  }

  tensorflow::Thread* StartThread(const tensorflow::ThreadOptions& options,
                                  const std::string& name,
                                  absl::AnyInvocable<void()> fn) override {
    // Linux keeps 15 characters of a thread name.
    return EnvWrapper::StartThread(
        options, name,
        [pinned = pinned_, cpus = cpus_, short_name = name.substr(0, 15),
         fn = std::move(fn)]() mutable {
          pthread_setname_np(pthread_self(), short_name.c_str());
          // pid 0 is the calling thread. The CPUs were checked against the
          // process's affinity when the config was parsed.
          if (pinned) sched_setaffinity(0, sizeof(cpus), &cpus);
          fn();
        });
  }

 private:
  bool pinned_;
  cpu_set_t cpus_;
};

int ThreadCount(int configured, const std::vector<int>& cpus) {
  if (configured > 0) return configured;
  if (!cpus.empty()) return static_cast<int>(cpus.size());
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

SessionGroup::Pool::Pool(tensorflow::Env* env, const std::string& name,
                         int num_threads)
    : pool_(env, tensorflow::ThreadOptions(), name, num_threads),
      eigen_(pool_.AsEigenThreadPool()) {}

void SessionGroup::Pool::Schedule(std::function<void()> fn) {
  eigen_->Schedule(std::move(fn));
}

void SessionGroup::Pool::ScheduleWithHint(std::function<void()> fn, int start,
                                          int limit) {
  eigen_->ScheduleWithHint(std::move(fn), start, limit);
}

void SessionGroup::Pool::Cancel() { eigen_->Cancel(); }

int SessionGroup::Pool::NumThreads() const { return eigen_->NumThreads(); }

int SessionGroup::Pool::CurrentThreadId() const {
  return eigen_->CurrentThreadId();
}

SessionGroup::SessionGroup(const ModelConfig& config)
    : policy_(config.select_session_policy), members_(config.session_num) {
  if (!config.use_per_session_threads) return;
  for (int i = 0; i < size(); ++i) {
    Member& member = members_[i];
    const std::vector<int> no_cpus;
    const std::vector<int>& cpus =
        config.cpusets.empty() ? no_cpus : config.cpusets[i];
    member.env = std::make_unique<MemberEnv>(cpus);
    tensorflow::Env* env = member.env.get();
    // Threads are named tf_sg<i>_inter and tf_sg<i>_intra.
    const std::string name = "sg" + std::to_string(i);
    member.inter_op = std::make_unique<Pool>(
        env, name + "_inter",
        ThreadCount(config.inter_op_parallelism_threads, cpus));
    member.intra_op = std::make_unique<Pool>(
        env, name + "_intra",
        ThreadCount(config.intra_op_parallelism_threads, cpus));
    member.pools.inter_op_threadpool = member.inter_op.get();
    member.pools.intra_op_threadpool = member.intra_op.get();
  }
}

int SessionGroup::Select() {
  if (policy_ == SessionPolicy::kMod) {
    thread_local const uint64_t tid = syscall(SYS_gettid);
    return static_cast<int>(tid % members_.size());
  }
  return static_cast<int>(next_.fetch_add(1, std::memory_order_relaxed) %
                          members_.size());
}

tensorflow::Status SessionGroup::Run(
    int member, tensorflow::Session* session,
    const tensorflow::RunOptions& run_options,
    const std::vector<std::pair<std::string, tensorflow::Tensor>>& inputs,
    const std::vector<std::string>& output_names,
    std::vector<tensorflow::Tensor>* outputs,
    tensorflow::RunMetadata* run_metadata) {
  return session->Run(run_options, inputs, output_names, {}, outputs,
                      run_metadata, members_[member].pools);
}

}  // namespace processor
}  // namespace deeprec
