#include "serving/processor/serving/timeline.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "tensorflow/core/platform/env.h"
#include "tensorflow/core/platform/path.h"

namespace deeprec {
namespace processor {
namespace {

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      out += escaped;
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

}  // namespace

Timeline::Timeline(const ModelConfig& config)
    : start_(config.timeline_start_step),
      interval_(config.timeline_interval_step),
      count_(config.timeline_trace_count),
      path_(config.timeline_path) {}

bool Timeline::ShouldTrace(int64_t step) const {
  if (count_ <= 0 || step < start_) return false;
  const int64_t offset = step - start_;
  return offset % interval_ == 0 && offset / interval_ < count_;
}

tensorflow::Status Timeline::Write(int64_t step,
                                   const tensorflow::StepStats& stats) const {
  tensorflow::Env* env = tensorflow::Env::Default();
  TF_RETURN_IF_ERROR(env->RecursivelyCreateDir(path_));
  return tensorflow::WriteStringToFile(
      env,
      tensorflow::io::JoinPath(path_, absl::StrCat("timeline_", step, ".json")),
      ChromeTrace(stats));
}

std::string ChromeTrace(const tensorflow::StepStats& stats) {
  std::string out = "{\"traceEvents\": [";
  bool first = true;
  auto add = [&](const std::string& event) {
    absl::StrAppend(&out, first ? "\n" : ",\n", event);
    first = false;
  };
  for (int pid = 0; pid < stats.dev_stats_size(); ++pid) {
    const tensorflow::DeviceStepStats& device = stats.dev_stats(pid);
    add(absl::StrCat(R"({"ph": "M", "name": "process_name", "pid": )", pid,
                     R"(, "args": {"name": )", JsonString(device.device()),
                     "}}"));
    for (const tensorflow::NodeExecStats& node : device.node_stats()) {
      const std::string& label = node.timeline_label();
      add(absl::StrCat(
          R"({"ph": "X", "cat": "Op", "name": )", JsonString(node.node_name()),
          R"(, "pid": )", pid, R"(, "tid": )", node.thread_id(), R"(, "ts": )",
          node.all_start_micros(), R"(, "dur": )", node.all_end_rel_micros(),
          R"(, "args": {"label": )", JsonString(label), "}}"));
    }
  }
  out += "\n]}\n";
  return out;
}

}  // namespace processor
}  // namespace deeprec
