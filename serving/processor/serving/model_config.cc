#include "serving/processor/serving/model_config.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tensorflow/core/platform/errors.h"

namespace deeprec {
namespace processor {
namespace {

using tensorflow::Status;
using tensorflow::errors::InvalidArgument;

// A parsed JSON value. model_config is one flat object, so values are kept
// simply; nested objects and arrays are parsed only to be reported by key.
struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string text;  // kString: the string; kNumber: the literal.
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;
};

const char* KindName(JsonValue::Kind kind) {
  switch (kind) {
    case JsonValue::Kind::kNull:
      return "null";
    case JsonValue::Kind::kBool:
      return "a boolean";
    case JsonValue::Kind::kNumber:
      return "a number";
    case JsonValue::Kind::kString:
      return "a string";
    case JsonValue::Kind::kArray:
      return "an array";
    case JsonValue::Kind::kObject:
      return "an object";
  }
  return "?";
}

// Recursive-descent parser of RFC 8259 JSON (no comments, no trailing
// commas); errors name the byte offset.
class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : text_(text) {}

  Status Parse(JsonValue* value) {
    TF_RETURN_IF_ERROR(ParseValue(value, 0));
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the object");
    return tensorflow::OkStatus();
  }

 private:
  // Deep nesting is never a valid model_config; the bound keeps a hostile
  // input from exhausting the stack.
  static constexpr int kMaxDepth = 64;

  Status Error(const std::string& what) const {
    return InvalidArgument("model_config is not valid JSON: ", what,
                           " at byte ", pos_);
  }

  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
            text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Consume(const char* word) {
    const size_t n = std::char_traits<char>::length(word);
    if (text_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Status ParseValue(JsonValue* value, int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    SkipSpace();
    if (pos_ >= text_.size()) return Error("unexpected end");
    const char c = text_[pos_];
    if (c == '{') return ParseObject(value, depth);
    if (c == '[') return ParseArray(value, depth);
    if (c == '"') {
      value->kind = JsonValue::Kind::kString;
      return ParseString(&value->text);
    }
    if (Consume("true")) {
      value->kind = JsonValue::Kind::kBool;
      value->boolean = true;
      return tensorflow::OkStatus();
    }
    if (Consume("false")) {
      value->kind = JsonValue::Kind::kBool;
      return tensorflow::OkStatus();
    }
    if (Consume("null")) {
      value->kind = JsonValue::Kind::kNull;
      return tensorflow::OkStatus();
    }
    return ParseNumber(value);
  }

  Status ParseObject(JsonValue* value, int depth) {
    value->kind = JsonValue::Kind::kObject;
    ++pos_;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return tensorflow::OkStatus();
    }
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '"') {
        return Error("expected a quoted key");
      }
      std::string key;
      TF_RETURN_IF_ERROR(ParseString(&key));
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != ':') {
        return Error("expected ':' after key \"" + key + "\"");
      }
      ++pos_;
      JsonValue member;
      TF_RETURN_IF_ERROR(ParseValue(&member, depth + 1));
      value->object.emplace_back(std::move(key), std::move(member));
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return tensorflow::OkStatus();
      }
      return Error("expected ',' or '}'");
    }
  }

  Status ParseArray(JsonValue* value, int depth) {
    value->kind = JsonValue::Kind::kArray;
    ++pos_;
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return tensorflow::OkStatus();
    }
    while (true) {
      JsonValue element;
      TF_RETURN_IF_ERROR(ParseValue(&element, depth + 1));
      value->array.push_back(std::move(element));
      SkipSpace();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return tensorflow::OkStatus();
      }
      return Error("expected ',' or ']'");
    }
  }

  Status ParseString(std::string* out) {
    ++pos_;  // The opening quote.
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"') return tensorflow::OkStatus();
      if (static_cast<unsigned char>(c) < 0x20) {
        return Error("control character in a string");
      }
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) break;
      const char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          if (pos_ + 4 > text_.size()) return Error("short \\u escape");
          char* end = nullptr;
          const std::string hex = text_.substr(pos_, 4);
          const long code = std::strtol(hex.c_str(), &end, 16);
          if (end != hex.c_str() + 4) return Error("bad \\u escape");
          pos_ += 4;
          AppendUtf8(static_cast<uint32_t>(code), out);
          break;
        }
        default:
          return Error(std::string("bad escape \\") + e);
      }
    }
    return Error("unterminated string");
  }

  // Surrogate pairs are not combined: no model_config value needs them.
  static void AppendUtf8(uint32_t code, std::string* out) {
    if (code < 0x80) {
      out->push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (code >> 6)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xE0 | (code >> 12)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  Status ParseNumber(JsonValue* value) {
    const size_t start = pos_;
    while (pos_ < text_.size() &&
           std::string("+-0123456789.eE").find(text_[pos_]) !=
               std::string::npos) {
      ++pos_;
    }
    if (pos_ == start) return Error("unexpected character");
    value->kind = JsonValue::Kind::kNumber;
    value->text = text_.substr(start, pos_ - start);
    char* end = nullptr;
    value->number = std::strtod(value->text.c_str(), &end);
    if (end != value->text.c_str() + value->text.size()) {
      pos_ = start;
      return Error("bad number '" + value->text + "'");
    }
    return tensorflow::OkStatus();
  }

  const std::string& text_;
  size_t pos_ = 0;
};

std::string Render(const JsonValue& value) {
  switch (value.kind) {
    case JsonValue::Kind::kString:
      return "\"" + value.text + "\"";
    case JsonValue::Kind::kNumber:
      return value.text;
    case JsonValue::Kind::kBool:
      return value.boolean ? "true" : "false";
    default:
      return KindName(value.kind);
  }
}

Status WrongType(const std::string& key, const JsonValue& value,
                 const char* wanted) {
  return InvalidArgument("model_config: \"", key, "\" must be ", wanted,
                         ", got ", Render(value));
}

Status GetString(const std::string& key, const JsonValue& value,
                 std::string* out) {
  if (value.kind != JsonValue::Kind::kString) {
    return WrongType(key, value, "a string");
  }
  *out = value.text;
  return tensorflow::OkStatus();
}

Status GetBool(const std::string& key, const JsonValue& value, bool* out) {
  if (value.kind != JsonValue::Kind::kBool) {
    return WrongType(key, value, "true or false");
  }
  *out = value.boolean;
  return tensorflow::OkStatus();
}

Status GetInt(const std::string& key, const JsonValue& value, int64_t min,
              int64_t* out) {
  const std::string wanted = "an integer >= " + std::to_string(min);
  if (value.kind != JsonValue::Kind::kNumber ||
      value.number != std::floor(value.number) || value.number < min ||
      value.number > 1e15) {
    return WrongType(key, value, wanted.c_str());
  }
  *out = static_cast<int64_t>(value.number);
  return tensorflow::OkStatus();
}

Status GetInt(const std::string& key, const JsonValue& value, int64_t min,
              int* out) {
  int64_t wide = 0;
  TF_RETURN_IF_ERROR(GetInt(key, value, min, &wide));
  if (wide > (1 << 20)) {
    return WrongType(key, value, "an integer <= 1048576");
  }
  *out = static_cast<int>(wide);
  return tensorflow::OkStatus();
}

// A path on a service this processor does not read (the guide allows OSS and
// HDFS paths for the model and the timeline).
Status GetLocalPath(const std::string& key, const JsonValue& value,
                    std::string* out) {
  TF_RETURN_IF_ERROR(GetString(key, value, out));
  const size_t scheme = out->find("://");
  if (scheme != std::string::npos) {
    return InvalidArgument("model_config: \"", key, "\" is \"", *out,
                           "\", but only local paths are supported (no ",
                           out->substr(0, scheme), "://)");
  }
  return tensorflow::OkStatus();
}

// Keys of the guide that need something this processor does not provide,
// with the reason given to the user.
const std::map<std::string, std::string>& UnsupportedKeys() {
  static const auto* keys = new std::map<std::string, std::string>{
      {"oss_endpoint", "OSS model stores are not supported"},
      {"oss_access_id", "OSS model stores are not supported"},
      {"oss_access_key", "OSS model stores are not supported"},
      {"redis_url", "Redis feature stores are not supported"},
      {"redis_password", "Redis feature stores are not supported"},
      {"read_thread_num", "Redis feature stores are not supported"},
      {"update_thread_num", "Redis feature stores are not supported"},
      {"gpu_ids_list", "this processor runs on CPU only"},
      {"use_multi_stream", "this processor runs on CPU only"},
      {"enable_device_placement_optimization",
       "this processor runs on CPU only"},
      {"ev_storage_type",
       "multi-tier EmbeddingVariable storage is not "
       "supported"},
      {"ev_storage_path",
       "multi-tier EmbeddingVariable storage is not "
       "supported"},
      {"ev_storage_size",
       "multi-tier EmbeddingVariable storage is not "
       "supported"},
      {"model_update_inter_threads",
       "a new version loads on its new session's own thread pools"},
      {"model_update_intra_threads",
       "a new version loads on its new session's own thread pools"},
  };
  return *keys;
}

Status ParseCpuList(const std::string& entry, const cpu_set_t& allowed,
                    std::vector<int>* cpus) {
  std::set<int> seen;
  for (absl::string_view item : absl::StrSplit(entry, ',')) {
    const std::string part(item);
    std::vector<std::string> bounds = absl::StrSplit(part, '-');
    if (bounds.size() > 2) {
      return InvalidArgument("model_config: \"cpusets\" has a bad range \"",
                             part, "\"");
    }
    int range[2];
    for (size_t i = 0; i < 2; ++i) {
      const std::string& bound = bounds[std::min(i, bounds.size() - 1)];
      char* end = nullptr;
      const long cpu = std::strtol(bound.c_str(), &end, 10);
      if (bound.empty() || *end != '\0' || cpu < 0 || cpu >= CPU_SETSIZE) {
        return InvalidArgument("model_config: \"cpusets\" has a bad CPU id \"",
                               bound, "\" in \"", entry, "\"");
      }
      range[i] = static_cast<int>(cpu);
    }
    if (range[0] > range[1]) {
      return InvalidArgument("model_config: \"cpusets\" has an empty range \"",
                             part, "\"");
    }
    for (int cpu = range[0]; cpu <= range[1]; ++cpu) {
      if (!CPU_ISSET(cpu, &allowed)) {
        return InvalidArgument("model_config: \"cpusets\" names CPU ", cpu,
                               ", which this process may not run on");
      }
      if (seen.insert(cpu).second) cpus->push_back(cpu);
    }
  }
  return tensorflow::OkStatus();
}

// Parses a cpuset list ("0-3;4,5,6"): one ';'-separated entry per session,
// each a ','-separated list of CPU ids or inclusive ranges. Every CPU must be
// one this process may run on.
Status ParseCpusets(const std::string& text,
                    std::vector<std::vector<int>>* cpusets) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
    return tensorflow::errors::Internal("sched_getaffinity failed");
  }
  cpusets->clear();
  for (absl::string_view entry : absl::StrSplit(text, ';')) {
    std::vector<int> cpus;
    TF_RETURN_IF_ERROR(ParseCpuList(std::string(entry), allowed, &cpus));
    cpusets->push_back(std::move(cpus));
  }
  return tensorflow::OkStatus();
}

}  // namespace

Status ParseModelConfig(const std::string& json, ModelConfig* config) {
  JsonValue root;
  TF_RETURN_IF_ERROR(JsonParser(json).Parse(&root));
  if (root.kind != JsonValue::Kind::kObject) {
    return InvalidArgument("model_config must be a JSON object, got ",
                           KindName(root.kind));
  }
  std::set<std::string> keys;
  std::string cpusets;
  std::string timeline_path;
  for (const auto& [key, value] : root.object) {
    if (!keys.insert(key).second) {
      return InvalidArgument("model_config: key \"", key, "\" appears twice");
    }
    const auto unsupported = UnsupportedKeys().find(key);
    if (unsupported != UnsupportedKeys().end()) {
      return InvalidArgument("model_config: key \"", key,
                             "\" is not supported: ", unsupported->second);
    }
    if (key == "session_num") {
      TF_RETURN_IF_ERROR(GetInt(key, value, 1, &config->session_num));
    } else if (key == "select_session_policy") {
      std::string policy;
      TF_RETURN_IF_ERROR(GetString(key, value, &policy));
      if (policy == "RR") {
        config->select_session_policy = SessionPolicy::kRoundRobin;
      } else if (policy == "MOD") {
        config->select_session_policy = SessionPolicy::kMod;
      } else {
        return WrongType(key, value, "\"MOD\" or \"RR\"");
      }
    } else if (key == "use_per_session_threads") {
      TF_RETURN_IF_ERROR(GetBool(key, value, &config->use_per_session_threads));
    } else if (key == "cpusets") {
      TF_RETURN_IF_ERROR(GetString(key, value, &cpusets));
    } else if (key == "inter_op_parallelism_threads") {
      TF_RETURN_IF_ERROR(
          GetInt(key, value, 0, &config->inter_op_parallelism_threads));
    } else if (key == "intra_op_parallelism_threads") {
      TF_RETURN_IF_ERROR(
          GetInt(key, value, 0, &config->intra_op_parallelism_threads));
    } else if (key == "signature_name") {
      TF_RETURN_IF_ERROR(GetString(key, value, &config->signature_name));
    } else if (key == "warmup_file_name") {
      TF_RETURN_IF_ERROR(GetLocalPath(key, value, &config->warmup_file_name));
    } else if (key == "model_store_type") {
      std::string store;
      TF_RETURN_IF_ERROR(GetString(key, value, &store));
      if (store != "local") {
        return InvalidArgument("model_config: \"model_store_type\" is \"",
                               store, "\", but only \"local\" is supported");
      }
    } else if (key == "feature_store_type") {
      std::string store;
      TF_RETURN_IF_ERROR(GetString(key, value, &store));
      if (store != "local" && store != "memory") {
        return InvalidArgument("model_config: \"feature_store_type\" is \"",
                               store,
                               "\", but only \"local\" (or \"memory\") is "
                               "supported");
      }
    } else if (key == "serialize_protocol") {
      std::string protocol;
      TF_RETURN_IF_ERROR(GetString(key, value, &protocol));
      if (protocol != "protobuf") {
        return WrongType(key, value, "\"protobuf\"");
      }
    } else if (key == "omp_num_threads" || key == "kmp_blocktime") {
      // Intel OpenMP (MKL) tuning in DeepRec; the stock wheel's kernels do
      // not use OpenMP, so the values are checked and have no effect.
      int unused = 0;
      TF_RETURN_IF_ERROR(GetInt(key, value, 0, &unused));
    } else if (key == "checkpoint_dir") {
      TF_RETURN_IF_ERROR(GetLocalPath(key, value, &config->checkpoint_dir));
    } else if (key == "savedmodel_dir") {
      TF_RETURN_IF_ERROR(GetLocalPath(key, value, &config->savedmodel_dir));
    } else if (key == "init_timeout_minutes") {
      if (value.kind != JsonValue::Kind::kNumber || value.number < 0) {
        return WrongType(key, value, "a number >= 0");
      }
      config->init_timeout_minutes = value.number;
    } else if (key == "timeline_start_step") {
      TF_RETURN_IF_ERROR(GetInt(key, value, 1, &config->timeline_start_step));
    } else if (key == "timeline_interval_step") {
      TF_RETURN_IF_ERROR(
          GetInt(key, value, 1, &config->timeline_interval_step));
    } else if (key == "timeline_trace_count") {
      TF_RETURN_IF_ERROR(GetInt(key, value, 0, &config->timeline_trace_count));
    } else if (key == "timeline_path") {
      TF_RETURN_IF_ERROR(GetLocalPath(key, value, &config->timeline_path));
    } else {
      return InvalidArgument("model_config: unknown key \"", key, "\"");
    }
  }
  if (config->savedmodel_dir.empty()) {
    return InvalidArgument("model_config: \"savedmodel_dir\" is required");
  }
  if (!cpusets.empty()) {
    if (!config->use_per_session_threads) {
      return InvalidArgument(
          "model_config: \"cpusets\" pins each session's own thread pools, "
          "so it needs \"use_per_session_threads\": true");
    }
    TF_RETURN_IF_ERROR(ParseCpusets(cpusets, &config->cpusets));
    if (static_cast<int>(config->cpusets.size()) != config->session_num) {
      return InvalidArgument("model_config: \"cpusets\" is \"", cpusets,
                             "\" with ", config->cpusets.size(),
                             " entries, but \"session_num\" is ",
                             config->session_num);
    }
  }
  if (config->timeline_trace_count > 0 && config->timeline_path.empty()) {
    return InvalidArgument("model_config: \"timeline_trace_count\" is ",
                           config->timeline_trace_count,
                           " but \"timeline_path\" is not set");
  }
  return tensorflow::OkStatus();
}

}  // namespace processor
}  // namespace deeprec
