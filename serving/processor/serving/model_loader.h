// Loading a SavedModel for serving without TensorFlow's LoadSavedModel (the
// pip wheel's libtensorflow_cc does not export it): the "serve" MetaGraphDef
// is read, its EmbeddingVariable lookups are switched to inference, and the
// variables are restored through the graph's own saver.

#ifndef SERVING_PROCESSOR_SERVING_MODEL_LOADER_H_
#define SERVING_PROCESSOR_SERVING_MODEL_LOADER_H_

#include <string>

#include "tensorflow/core/framework/graph.pb.h"
#include "tensorflow/core/platform/status.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/public/session.h"

namespace deeprec {
namespace processor {

// Reads the MetaGraphDef tagged "serve" from `export_dir`/saved_model.pb (or
// saved_model.pbtxt).
tensorflow::Status ReadServingMetaGraph(const std::string& export_dir,
                                        tensorflow::MetaGraphDef* meta_graph);

// Sets is_inference=true on every EmbeddingVariable lookup of `graph_def`
// (its functions included), so that serving never inserts ids: unseen ids
// read the variable's default value, ids not yet admitted its
// default_value_no_permission. Returns the number of nodes changed.
int MarkInferenceLookups(tensorflow::GraphDef* graph_def);

// Runs the graph's saver restore op with `checkpoint_prefix` (the SavedModel's
// variables/variables or a training checkpoint of the same model).
tensorflow::Status RestoreVariables(tensorflow::Session* session,
                                    const tensorflow::MetaGraphDef& meta_graph,
                                    const std::string& checkpoint_prefix);

// Runs the SavedModel's init op (TF2 signature, main op or legacy init op),
// feeding its asset paths, as TensorFlow's loader does after a restore.
tensorflow::Status RunInitOp(tensorflow::Session* session,
                             const tensorflow::MetaGraphDef& meta_graph,
                             const std::string& export_dir);

// The SavedModel's own variables, or "" when it has none.
std::string SavedModelVariablesPrefix(const std::string& export_dir);

}  // namespace processor
}  // namespace deeprec

#endif  // SERVING_PROCESSOR_SERVING_MODEL_LOADER_H_
