#include "serving/processor/serving/model_loader.h"

#include <utility>
#include <vector>

#include "absl/strings/str_join.h"
#include "tensorflow/cc/saved_model/constants.h"
#include "tensorflow/core/framework/attr_value.pb.h"
#include "tensorflow/core/framework/function.pb.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/platform/errors.h"
#include "tensorflow/core/platform/path.h"
#include "tensorflow/core/protobuf/saved_model.pb.h"

namespace deeprec {
namespace processor {
namespace {

using tensorflow::MetaGraphDef;
using tensorflow::Status;
using tensorflow::Tensor;

constexpr char kServeTag[] = "serve";

// The EmbeddingVariable ops that insert ids unless is_inference is set.
bool IsInsertingLookup(const std::string& op) {
  return op == "KvResourceGather" || op == "KvResourceGatherWithCounts";
}

int MarkNodes(google::protobuf::RepeatedPtrField<tensorflow::NodeDef>* nodes) {
  int changed = 0;
  for (tensorflow::NodeDef& node : *nodes) {
    if (!IsInsertingLookup(node.op())) continue;
    tensorflow::AttrValue& attr = (*node.mutable_attr())["is_inference"];
    if (attr.value_case() != tensorflow::AttrValue::kB || !attr.b()) {
      attr.set_b(true);
      ++changed;
    }
  }
  return changed;
}

bool HasTag(const MetaGraphDef& meta_graph, const std::string& tag) {
  for (const std::string& t : meta_graph.meta_info_def().tags()) {
    if (t == tag) return true;
  }
  return false;
}

// The name of the init op, "" when the SavedModel has none.
std::string InitOpName(const MetaGraphDef& meta_graph) {
  const auto& signatures = meta_graph.signature_def();
  const auto init = signatures.find(tensorflow::kSavedModelInitOpSignatureKey);
  if (init != signatures.end()) {
    const auto& outputs = init->second.outputs();
    const auto op = outputs.find(tensorflow::kSavedModelInitOpSignatureKey);
    if (op != outputs.end()) return op->second.name();
  }
  for (const char* key : {tensorflow::kSavedModelMainOpKey,
                          tensorflow::kSavedModelLegacyInitOpKey}) {
    const auto collection = meta_graph.collection_def().find(key);
    if (collection != meta_graph.collection_def().end() &&
        collection->second.node_list().value_size() == 1) {
      return collection->second.node_list().value(0);
    }
  }
  return "";
}

}  // namespace

Status ReadServingMetaGraph(const std::string& export_dir,
                            MetaGraphDef* meta_graph) {
  tensorflow::Env* env = tensorflow::Env::Default();
  tensorflow::SavedModel saved_model;
  const std::string pb =
      tensorflow::io::JoinPath(export_dir, tensorflow::kSavedModelFilenamePb);
  const std::string pbtxt = tensorflow::io::JoinPath(
      export_dir, tensorflow::kSavedModelFilenamePbTxt);
  if (env->FileExists(pb).ok()) {
    TF_RETURN_IF_ERROR(tensorflow::ReadBinaryProto(env, pb, &saved_model));
  } else if (env->FileExists(pbtxt).ok()) {
    TF_RETURN_IF_ERROR(tensorflow::ReadTextProto(env, pbtxt, &saved_model));
  } else {
    return tensorflow::errors::NotFound("savedmodel_dir \"", export_dir,
                                        "\" has no saved_model.pb or "
                                        "saved_model.pbtxt");
  }
  std::vector<std::string> tag_sets;
  for (MetaGraphDef& candidate : *saved_model.mutable_meta_graphs()) {
    if (HasTag(candidate, kServeTag)) {
      *meta_graph = std::move(candidate);
      return tensorflow::OkStatus();
    }
    tag_sets.push_back(
        "[" + absl::StrJoin(candidate.meta_info_def().tags(), ",") + "]");
  }
  return tensorflow::errors::NotFound(
      "the SavedModel in \"", export_dir, "\" has no MetaGraphDef tagged \"",
      kServeTag, "\"; its tag sets are: ", absl::StrJoin(tag_sets, " "));
}

int MarkInferenceLookups(tensorflow::GraphDef* graph_def) {
  int changed = MarkNodes(graph_def->mutable_node());
  for (tensorflow::FunctionDef& function :
       *graph_def->mutable_library()->mutable_function()) {
    changed += MarkNodes(function.mutable_node_def());
  }
  return changed;
}

std::string SavedModelVariablesPrefix(const std::string& export_dir) {
  const std::string prefix = tensorflow::io::JoinPath(
      export_dir, tensorflow::kSavedModelVariablesDirectory,
      tensorflow::kSavedModelVariablesFilename);
  return tensorflow::Env::Default()->FileExists(prefix + ".index").ok() ? prefix
                                                                        : "";
}

Status RestoreVariables(tensorflow::Session* session,
                        const MetaGraphDef& meta_graph,
                        const std::string& checkpoint_prefix) {
  const tensorflow::SaverDef& saver = meta_graph.saver_def();
  if (saver.restore_op_name().empty()) {
    return tensorflow::errors::FailedPrecondition(
        "the SavedModel has no saver, so checkpoint \"", checkpoint_prefix,
        "\" cannot be restored into it");
  }
  Tensor filename(tensorflow::DT_STRING, tensorflow::TensorShape({}));
  filename.scalar<tensorflow::tstring>()() = checkpoint_prefix;
  const Status status = session->Run({{saver.filename_tensor_name(), filename}},
                                     {}, {saver.restore_op_name()}, nullptr);
  if (!status.ok()) {
    return tensorflow::errors::CreateWithUpdatedMessage(
        status, "restoring checkpoint \"" + checkpoint_prefix +
                    "\" failed: " + std::string(status.message()));
  }
  return tensorflow::OkStatus();
}

Status RunInitOp(tensorflow::Session* session, const MetaGraphDef& meta_graph,
                 const std::string& export_dir) {
  const std::string init_op = InitOpName(meta_graph);
  if (init_op.empty()) return tensorflow::OkStatus();
  std::vector<std::pair<std::string, Tensor>> assets;
  for (const tensorflow::AssetFileDef& asset : meta_graph.asset_file_def()) {
    Tensor path(tensorflow::DT_STRING, tensorflow::TensorShape({}));
    path.scalar<tensorflow::tstring>()() = tensorflow::io::JoinPath(
        export_dir, tensorflow::kSavedModelAssetsDirectory, asset.filename());
    assets.emplace_back(asset.tensor_info().name(), std::move(path));
  }
  return session->Run(assets, {}, {init_op}, nullptr);
}

}  // namespace processor
}  // namespace deeprec
