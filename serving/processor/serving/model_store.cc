#include "serving/processor/serving/model_store.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/platform/errors.h"
#include "tensorflow/core/platform/file_statistics.h"
#include "tensorflow/core/platform/path.h"

namespace deeprec {
namespace processor {
namespace {

// The model_checkpoint_path of the text-format CheckpointState in
// `dir`/checkpoint, resolved against `dir`; "" when there is none. (The
// CheckpointState message has no C++ class in the wheel's headers.)
std::string StatePrefix(tensorflow::Env* env, const std::string& dir) {
  const std::string state_file = tensorflow::io::JoinPath(dir, "checkpoint");
  std::string state;
  if (!tensorflow::ReadFileToString(env, state_file, &state).ok()) return "";
  for (absl::string_view line : absl::StrSplit(state, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "model_checkpoint_path:")) continue;
    line = absl::StripAsciiWhitespace(line);
    if (line.size() < 2 || line.front() != '"' || line.back() != '"') {
      return "";
    }
    const std::string path(line.substr(1, line.size() - 2));
    return tensorflow::io::IsAbsolutePath(path)
               ? path
               : tensorflow::io::JoinPath(dir, path);
  }
  return "";
}

}  // namespace

tensorflow::Status LatestCheckpoint(const std::string& checkpoint_dir,
                                    CheckpointVersion* version) {
  tensorflow::Env* env = tensorflow::Env::Default();
  std::vector<std::string> dirs = {checkpoint_dir};
  std::vector<std::string> children;
  if (env->GetChildren(checkpoint_dir, &children).ok()) {
    for (const std::string& child : children) {
      const std::string path = tensorflow::io::JoinPath(checkpoint_dir, child);
      if (env->IsDirectory(path).ok()) dirs.push_back(path);
    }
  }
  *version = CheckpointVersion();
  for (const std::string& dir : dirs) {
    const std::string candidate = StatePrefix(env, dir);
    tensorflow::FileStatistics stat;
    if (candidate.empty() || !env->Stat(candidate + ".index", &stat).ok()) {
      continue;
    }
    if (stat.mtime_nsec > version->mtime_nsec ||
        (stat.mtime_nsec == version->mtime_nsec &&
         candidate > version->prefix)) {
      *version = {candidate, stat.mtime_nsec};
    }
  }
  if (version->prefix.empty()) {
    return tensorflow::errors::NotFound(
        "checkpoint_dir \"", checkpoint_dir,
        "\" holds no checkpoint (a \"checkpoint\" state file naming an "
        "existing checkpoint, in it or in a subdirectory)");
  }
  return tensorflow::OkStatus();
}

}  // namespace processor
}  // namespace deeprec
