#include "serving/processor/serving/model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "serving/processor/serving/array_convert.h"
#include "serving/processor/serving/model_loader.h"
#include "serving/processor/serving/model_store.h"
#include "tensorflow/core/framework/tensor_shape.pb.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/platform/errors.h"
#include "tensorflow/core/protobuf/config.pb.h"
#include "tensorflow/core/public/session_options.h"

namespace deeprec {
namespace processor {
namespace {

using tensorflow::Status;
using tensorflow::eas::PredictRequest;
using tensorflow::eas::PredictResponse;
using tensorflow::errors::InvalidArgument;

using TensorInfoMap =
    google::protobuf::Map<std::string, tensorflow::TensorInfo>;

std::string Keys(const TensorInfoMap& infos) {
  std::vector<std::string> keys;
  for (const auto& [key, info] : infos) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return absl::StrJoin(keys, ", ");
}

std::string SignatureNames(const tensorflow::MetaGraphDef& meta_graph) {
  std::vector<std::string> names;
  for (const auto& [name, signature] : meta_graph.signature_def()) {
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return absl::StrJoin(names, ", ");
}

// The signature key of `name`, which is a key or the tensor name of one;
// nullptr when it is neither. (The guide's examples use both.)
const std::string* Resolve(const TensorInfoMap& infos,
                           const std::string& name) {
  const auto by_key = infos.find(name);
  if (by_key != infos.end()) return &by_key->first;
  for (const auto& [key, info] : infos) {
    if (info.name() == name) return &key;
  }
  return nullptr;
}

Status CheckShape(const std::string& name, const tensorflow::TensorShape& shape,
                  const tensorflow::TensorShapeProto& expected) {
  if (expected.unknown_rank()) return tensorflow::OkStatus();
  bool compatible = shape.dims() == expected.dim_size();
  for (int i = 0; compatible && i < shape.dims(); ++i) {
    const int64_t want = expected.dim(i).size();
    compatible = want < 0 || want == shape.dim_size(i);
  }
  if (compatible) return tensorflow::OkStatus();
  std::vector<std::string> dims;
  for (const auto& dim : expected.dim()) {
    dims.push_back(dim.size() < 0 ? "?" : std::to_string(dim.size()));
  }
  return InvalidArgument("input \"", name, "\" has shape ", shape.DebugString(),
                         " but the signature expects [",
                         absl::StrJoin(dims, ","), "]");
}

// How often the watcher looks for a new checkpoint version: a few stat
// calls, cheap next to serving.
constexpr std::chrono::seconds kCheckpointPollInterval(1);

Status WaitForCheckpoint(const ModelConfig& config,
                         CheckpointVersion* checkpoint) {
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::duration<double>(config.init_timeout_minutes * 60);
  while (true) {
    const Status status = LatestCheckpoint(config.checkpoint_dir, checkpoint);
    if (status.ok() || std::chrono::steady_clock::now() >= deadline) {
      return status;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

Model::Model(const ModelConfig& config, tensorflow::MetaGraphDef meta_graph,
             std::optional<PredictRequest> warmup)
    : config_(config),
      meta_graph_(std::move(meta_graph)),
      warmup_(std::move(warmup)),
      timeline_(config),
      group_(config) {}

Model::~Model() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

Model::Version::~Version() {
  // The last request on this version has finished: nothing runs any more.
  if (session != nullptr) session->Close().IgnoreError();
}

Status Model::Create(const ModelConfig& config, std::unique_ptr<Model>* model) {
  tensorflow::MetaGraphDef meta_graph;
  TF_RETURN_IF_ERROR(ReadServingMetaGraph(config.savedmodel_dir, &meta_graph));
  if (!meta_graph.signature_def().contains(config.signature_name)) {
    return InvalidArgument(
        "signature_name \"", config.signature_name,
        "\" is not in the SavedModel; it has: ", SignatureNames(meta_graph));
  }
  MarkInferenceLookups(meta_graph.mutable_graph_def());
  std::optional<PredictRequest> warmup;
  if (!config.warmup_file_name.empty()) {
    std::string bytes;
    TF_RETURN_IF_ERROR(tensorflow::ReadFileToString(
        tensorflow::Env::Default(), config.warmup_file_name, &bytes));
    warmup.emplace();
    if (!warmup->ParseFromString(bytes)) {
      return InvalidArgument("warmup_file_name \"", config.warmup_file_name,
                             "\" does not hold a serialized PredictRequest");
    }
  }
  CheckpointVersion checkpoint{
      SavedModelVariablesPrefix(config.savedmodel_dir)};
  if (!config.checkpoint_dir.empty()) {
    TF_RETURN_IF_ERROR(WaitForCheckpoint(config, &checkpoint));
  }
  std::unique_ptr<Model> loaded(
      new Model(config, std::move(meta_graph), std::move(warmup)));
  TF_RETURN_IF_ERROR(loaded->Load(checkpoint, &loaded->current_));
  if (!config.checkpoint_dir.empty()) {
    loaded->watcher_ =
        std::thread([m = loaded.get()] { m->WatchCheckpoints(); });
  }
  *model = std::move(loaded);
  return tensorflow::OkStatus();
}

Status Model::Load(const CheckpointVersion& checkpoint,
                   std::shared_ptr<const Version>* loaded) {
  auto version = std::make_shared<Version>();
  version->checkpoint = checkpoint;
  version->model_path = config_.checkpoint_dir.empty() ? config_.savedmodel_dir
                                                       : checkpoint.prefix;
  tensorflow::SessionOptions options;
  options.config.set_inter_op_parallelism_threads(
      config_.inter_op_parallelism_threads);
  options.config.set_intra_op_parallelism_threads(
      config_.intra_op_parallelism_threads);
  tensorflow::Session* session = nullptr;
  TF_RETURN_IF_ERROR(tensorflow::NewSession(options, &session));
  version->session.reset(session);
  TF_RETURN_IF_ERROR(session->Create(meta_graph_.graph_def()));
  if (!checkpoint.prefix.empty()) {
    TF_RETURN_IF_ERROR(
        RestoreVariables(session, meta_graph_, checkpoint.prefix));
  }
  TF_RETURN_IF_ERROR(RunInitOp(session, meta_graph_, config_.savedmodel_dir));
  if (warmup_.has_value()) {
    for (int member = 0; member < group_.size(); ++member) {
      PredictResponse response;
      const Status status = Run(member, *version, *warmup_, &response, 0);
      if (!status.ok()) {
        return InvalidArgument("the warmup request in \"",
                               config_.warmup_file_name,
                               "\" failed: ", status.message());
      }
    }
  }
  *loaded = std::move(version);
  return tensorflow::OkStatus();
}

std::shared_ptr<const Model::Version> Model::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

std::string Model::model_path() const { return current()->model_path; }

void Model::WatchCheckpoints() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_.wait_for(lock, kCheckpointPollInterval,
                         [this] { return stopping_; })) {
    lock.unlock();
    UpdateOnce();
    lock.lock();
  }
}

void Model::UpdateOnce() {
  CheckpointVersion latest;
  // With every version gone, keep serving the loaded one.
  if (!LatestCheckpoint(config_.checkpoint_dir, &latest).ok()) return;
  if (latest == current()->checkpoint || latest == failed_) return;
  std::shared_ptr<const Version> version;
  const Status status = Load(latest, &version);
  if (!status.ok()) {
    failed_ = latest;
    std::fprintf(stderr,
                 "deeprec serving processor: checkpoint \"%s\" not loaded, "
                 "still serving \"%s\": %s\n",
                 latest.prefix.c_str(), model_path().c_str(),
                 std::string(status.message()).c_str());
    return;
  }
  std::shared_ptr<const Version> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::exchange(current_, std::move(version));
  }
  // Freeing a version's tables takes a while: do it here once the requests
  // still running on it are done, not in the last of them (whose caller
  // would wait) nor under mu_ (which every request takes). No new request
  // can reach `old` any more, so its count only falls.
  while (old.use_count() > 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Status Model::Predict(const PredictRequest& request,
                      PredictResponse* response) {
  const int64_t step = steps_.fetch_add(1, std::memory_order_relaxed) + 1;
  const std::shared_ptr<const Version> version = current();
  return Run(group_.Select(), *version, request, response,
             timeline_.ShouldTrace(step) ? step : 0);
}

Status Model::Run(int member, const Version& version,
                  const PredictRequest& request, PredictResponse* response,
                  int64_t trace_step) {
  const std::string& signature_name = request.signature_name().empty()
                                          ? config_.signature_name
                                          : request.signature_name();
  const auto found = meta_graph_.signature_def().find(signature_name);
  if (found == meta_graph_.signature_def().end()) {
    return InvalidArgument(
        "signature_name \"", signature_name,
        "\" is not in the model; it has: ", SignatureNames(meta_graph_));
  }
  const tensorflow::SignatureDef& signature = found->second;

  // Requests come as a map: sort the names so errors are reproducible.
  std::map<std::string, const tensorflow::eas::ArrayProto*> arrays;
  for (const auto& [name, array] : request.inputs()) arrays[name] = &array;
  std::vector<std::pair<std::string, tensorflow::Tensor>> feeds;
  std::set<std::string> fed;
  for (const auto& [name, array] : arrays) {
    const std::string* key = Resolve(signature.inputs(), name);
    if (key == nullptr) {
      return InvalidArgument("input \"", name,
                             "\" is not an input of "
                             "signature \"",
                             signature_name,
                             "\"; its inputs "
                             "are: ",
                             Keys(signature.inputs()));
    }
    if (!fed.insert(*key).second) {
      return InvalidArgument("input \"", *key,
                             "\" is given twice (by key and by tensor name)");
    }
    const tensorflow::TensorInfo& info = signature.inputs().at(*key);
    if (info.encoding_case() != tensorflow::TensorInfo::kName) {
      return InvalidArgument("input \"", name,
                             "\" is a composite tensor, which the processor "
                             "cannot feed");
    }
    tensorflow::Tensor tensor;
    TF_RETURN_IF_ERROR(ArrayToTensor(name, *array, &tensor));
    if (tensor.dtype() != info.dtype()) {
      return InvalidArgument("input \"", name, "\" has dtype ",
                             tensorflow::DataTypeString(tensor.dtype()),
                             " but the signature expects ",
                             tensorflow::DataTypeString(info.dtype()));
    }
    TF_RETURN_IF_ERROR(CheckShape(name, tensor.shape(), info.tensor_shape()));
    feeds.emplace_back(info.name(), std::move(tensor));
  }
  if (fed.size() != static_cast<size_t>(signature.inputs_size())) {
    std::vector<std::string> missing;
    for (const auto& [key, info] : signature.inputs()) {
      if (!fed.count(key)) missing.push_back(key);
    }
    std::sort(missing.begin(), missing.end());
    return InvalidArgument("the request lacks input(s) ",
                           absl::StrJoin(missing, ", "), " of signature \"",
                           signature_name, "\"");
  }

  // Outputs are returned under the names the request used.
  std::vector<std::string> names(request.output_filter().begin(),
                                 request.output_filter().end());
  if (names.empty()) {
    for (const auto& [key, info] : signature.outputs()) names.push_back(key);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<std::string> fetches;
  for (const std::string& name : names) {
    const std::string* key = Resolve(signature.outputs(), name);
    if (key == nullptr) {
      return InvalidArgument("output \"", name,
                             "\" is not an output of "
                             "signature \"",
                             signature_name,
                             "\"; its outputs "
                             "are: ",
                             Keys(signature.outputs()));
    }
    const tensorflow::TensorInfo& info = signature.outputs().at(*key);
    if (info.encoding_case() != tensorflow::TensorInfo::kName) {
      return InvalidArgument("output \"", name,
                             "\" is a composite tensor, which the processor "
                             "cannot return");
    }
    fetches.push_back(info.name());
  }

  tensorflow::RunOptions run_options;
  tensorflow::RunMetadata metadata;
  if (trace_step > 0) {
    run_options.set_trace_level(tensorflow::RunOptions::FULL_TRACE);
  }
  std::vector<tensorflow::Tensor> outputs;
  TF_RETURN_IF_ERROR(group_.Run(member, version.session.get(), run_options,
                                feeds, fetches, &outputs, &metadata));
  if (trace_step > 0) {
    const Status written = timeline_.Write(trace_step, metadata.step_stats());
    if (!written.ok()) {
      // The request itself succeeded; a lost trace must not fail it.
      std::fprintf(stderr,
                   "deeprec serving processor: timeline of step %lld "
                   "not written: %s\n",
                   static_cast<long long>(trace_step),
                   std::string(written.message()).c_str());
    }
  }
  for (size_t i = 0; i < names.size(); ++i) {
    TF_RETURN_IF_ERROR(TensorToArray(
        names[i], outputs[i], &(*response->mutable_outputs())[names[i]]));
  }
  return tensorflow::OkStatus();
}

}  // namespace processor
}  // namespace deeprec
