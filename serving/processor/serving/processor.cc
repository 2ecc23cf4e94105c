// The C API: converts between C buffers and the Model, and keeps every C++
// error (statuses and exceptions alike) from crossing into the caller.

#include "serving/processor/serving/processor.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <string>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "serving/processor/serving/model.h"
#include "serving/processor/serving/model_config.h"
#include "serving/processor/serving/predict.pb.h"
#include "tensorflow/core/platform/errors.h"

#define PROCESSOR_EXPORT __attribute__((visibility("default")))

namespace {

using deeprec::processor::Model;

// Hands `bytes` to the caller in a malloc'ed buffer. The message of an
// error is NUL-terminated so that callers can print it as it is.
int Reply(int status, const std::string& bytes, void** output_data,
          int* output_size) {
  if (output_data == nullptr || output_size == nullptr) {
    return PROCESSOR_STATUS_ERROR;
  }
  *output_data = nullptr;
  *output_size = 0;
  if (bytes.size() >= static_cast<size_t>(std::numeric_limits<int>::max())) {
    return Reply(PROCESSOR_STATUS_ERROR,
                 "the response is larger than 2 GiB, which output_size "
                 "cannot describe",
                 output_data, output_size);
  }
  char* buffer = static_cast<char*>(std::malloc(bytes.size() + 1));
  if (buffer == nullptr) return PROCESSOR_STATUS_ERROR;
  std::memcpy(buffer, bytes.data(), bytes.size());
  buffer[bytes.size()] = '\0';
  *output_data = buffer;
  *output_size = static_cast<int>(bytes.size());
  return status;
}

int Error(const std::string& message, void** output_data, int* output_size) {
  return Reply(PROCESSOR_STATUS_ERROR, message, output_data, output_size);
}

}  // namespace

extern "C" {

PROCESSOR_EXPORT void* initialize(const char* model_entry,
                                  const char* model_config, int* state) {
  (void)model_entry;  // The guide passes "": there is one model per handle.
  std::string error;
  try {
    deeprec::processor::ModelConfig config;
    tensorflow::Status status =
        model_config == nullptr
            ? tensorflow::errors::InvalidArgument("model_config is NULL")
            : deeprec::processor::ParseModelConfig(model_config, &config);
    std::unique_ptr<Model> model;
    if (status.ok()) status = Model::Create(config, &model);
    if (status.ok()) {
      if (state != nullptr) *state = 0;
      return model.release();
    }
    error = std::string(status.message());
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::fprintf(stderr, "deeprec serving processor: initialize failed: %s\n",
               error.c_str());
  if (state != nullptr) *state = -1;
  return nullptr;
}

PROCESSOR_EXPORT int process(void* model_buf, const void* input_data,
                             int input_size, void** output_data,
                             int* output_size) {
  try {
    if (model_buf == nullptr) {
      return Error("process: model_buf is NULL (initialize failed?)",
                   output_data, output_size);
    }
    if (input_size < 0 || (input_data == nullptr && input_size > 0)) {
      return Error("process: input_data is NULL or input_size (" +
                       std::to_string(input_size) + ") is negative",
                   output_data, output_size);
    }
    tensorflow::eas::PredictRequest request;
    if (!request.ParseFromArray(input_data, input_size)) {
      return Error("process: input_data (" + std::to_string(input_size) +
                       " bytes) is not a serialized PredictRequest",
                   output_data, output_size);
    }
    tensorflow::eas::PredictResponse response;
    const tensorflow::Status status =
        static_cast<Model*>(model_buf)->Predict(request, &response);
    if (!status.ok()) {
      return Error("process: " + std::string(status.message()), output_data,
                   output_size);
    }
    // Deterministic: map entries in key order, so equal responses are
    // equal bytes (callers may cache or compare them).
    std::string bytes;
    {
      google::protobuf::io::StringOutputStream stream(&bytes);
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.SetSerializationDeterministic(true);
      response.SerializeToCodedStream(&coded);
    }
    return Reply(PROCESSOR_STATUS_OK, bytes, output_data, output_size);
  } catch (const std::exception& e) {
    return Error(std::string("process: ") + e.what(), output_data, output_size);
  }
}

PROCESSOR_EXPORT int get_serving_model_info(void* model_buf, void** output_data,
                                            int* output_size) {
  try {
    if (model_buf == nullptr) {
      return Error("get_serving_model_info: model_buf is NULL", output_data,
                   output_size);
    }
    tensorflow::eas::ServingModelInfo info;
    info.set_model_path(static_cast<Model*>(model_buf)->model_path());
    return Reply(PROCESSOR_STATUS_OK, info.SerializeAsString(), output_data,
                 output_size);
  } catch (const std::exception& e) {
    return Error(std::string("get_serving_model_info: ") + e.what(),
                 output_data, output_size);
  }
}

PROCESSOR_EXPORT void free_output_data(void* output_data) {
  std::free(output_data);
}

}  // extern "C"
