// ArrayProto (predict.proto) <-> tensorflow::Tensor.

#ifndef SERVING_PROCESSOR_SERVING_ARRAY_CONVERT_H_
#define SERVING_PROCESSOR_SERVING_ARRAY_CONVERT_H_

#include <string>

#include "serving/processor/serving/predict.pb.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/status.h"

namespace deeprec {
namespace processor {

// The tensor of request input `name`. Supported dtypes: DT_FLOAT,
// DT_DOUBLE, DT_INT32, DT_INT16, DT_INT8, DT_UINT8 (from int_val), DT_INT64,
// DT_STRING and DT_BOOL. The value count must match the shape (a scalar
// shape [] holds one value).
tensorflow::Status ArrayToTensor(const std::string& name,
                                 const tensorflow::eas::ArrayProto& array,
                                 tensorflow::Tensor* tensor);

// The array of output `name`; the same dtypes as ArrayToTensor.
tensorflow::Status TensorToArray(const std::string& name,
                                 const tensorflow::Tensor& tensor,
                                 tensorflow::eas::ArrayProto* array);

}  // namespace processor
}  // namespace deeprec

#endif  // SERVING_PROCESSOR_SERVING_ARRAY_CONVERT_H_
