#include "serving/processor/serving/array_convert.h"

#include <algorithm>
#include <limits>
#include <type_traits>

#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/errors.h"

namespace deeprec {
namespace processor {
namespace {

using tensorflow::DataType;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::eas::ArrayDataType;
using tensorflow::eas::ArrayProto;
using tensorflow::errors::InvalidArgument;

// ArrayDataType's numbers are TensorFlow's DataType numbers.
DataType ToDataType(ArrayDataType dtype) {
  return static_cast<DataType>(dtype);
}

template <typename T, typename Values>
Status Fill(const std::string& name, const Values& values, Tensor* tensor) {
  if (values.size() != tensor->NumElements()) {
    return InvalidArgument(
        "input \"", name, "\" has ", values.size(), " values but its shape ",
        tensor->shape().DebugString(), " needs ", tensor->NumElements());
  }
  auto flat = tensor->flat<T>();
  for (int i = 0; i < values.size(); ++i) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                  sizeof(T) < sizeof(int32_t)) {
      if (values[i] < std::numeric_limits<T>::min() ||
          values[i] > std::numeric_limits<T>::max()) {
        return InvalidArgument("input \"", name, "\" has value ", values[i],
                               " at ", i, ", outside the range of ",
                               tensorflow::DataTypeString(tensor->dtype()));
      }
    }
    flat(i) = static_cast<T>(values[i]);
  }
  return tensorflow::OkStatus();
}

template <typename T, typename Values>
void Copy(const Tensor& tensor, Values* values) {
  const auto flat = tensor.flat<T>();
  values->Reserve(flat.size());
  for (int64_t i = 0; i < flat.size(); ++i) values->Add(flat(i));
}

}  // namespace

Status ArrayToTensor(const std::string& name, const ArrayProto& array,
                     Tensor* tensor) {
  tensorflow::TensorShape shape;
  for (const int64_t dim : array.array_shape().dim()) {
    if (dim < 0) {
      return InvalidArgument("input \"", name, "\" has negative dimension ",
                             dim, " in array_shape");
    }
    TF_RETURN_IF_ERROR(shape.AddDimWithStatus(dim));
  }
  const DataType dtype = ToDataType(array.dtype());
  switch (dtype) {
    case tensorflow::DT_FLOAT:
    case tensorflow::DT_DOUBLE:
    case tensorflow::DT_INT32:
    case tensorflow::DT_INT16:
    case tensorflow::DT_INT8:
    case tensorflow::DT_UINT8:
    case tensorflow::DT_INT64:
    case tensorflow::DT_STRING:
    case tensorflow::DT_BOOL:
      break;
    default:
      return InvalidArgument(
          "input \"", name, "\" has dtype ",
          tensorflow::eas::ArrayDataType_Name(array.dtype()), " (",
          static_cast<int>(array.dtype()),
          "); supported: DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT16, DT_INT8, "
          "DT_UINT8, DT_INT64, DT_STRING, DT_BOOL");
  }
  *tensor = Tensor(dtype, shape);
  switch (dtype) {
    case tensorflow::DT_FLOAT:
      return Fill<float>(name, array.float_val(), tensor);
    case tensorflow::DT_DOUBLE:
      return Fill<double>(name, array.double_val(), tensor);
    case tensorflow::DT_INT32:
      return Fill<int32_t>(name, array.int_val(), tensor);
    case tensorflow::DT_INT16:
      return Fill<int16_t>(name, array.int_val(), tensor);
    case tensorflow::DT_INT8:
      return Fill<int8_t>(name, array.int_val(), tensor);
    case tensorflow::DT_UINT8:
      return Fill<uint8_t>(name, array.int_val(), tensor);
    case tensorflow::DT_INT64:
      return Fill<int64_t>(name, array.int64_val(), tensor);
    case tensorflow::DT_STRING:
      return Fill<tensorflow::tstring>(name, array.string_val(), tensor);
    default:
      return Fill<bool>(name, array.bool_val(), tensor);
  }
}

Status TensorToArray(const std::string& name, const Tensor& tensor,
                     ArrayProto* array) {
  array->Clear();
  for (const int64_t dim : tensor.shape().dim_sizes()) {
    array->mutable_array_shape()->add_dim(dim);
  }
  array->set_dtype(static_cast<ArrayDataType>(tensor.dtype()));
  switch (tensor.dtype()) {
    case tensorflow::DT_FLOAT:
      Copy<float>(tensor, array->mutable_float_val());
      break;
    case tensorflow::DT_DOUBLE:
      Copy<double>(tensor, array->mutable_double_val());
      break;
    case tensorflow::DT_INT32:
      Copy<int32_t>(tensor, array->mutable_int_val());
      break;
    case tensorflow::DT_INT16:
      Copy<int16_t>(tensor, array->mutable_int_val());
      break;
    case tensorflow::DT_INT8:
      Copy<int8_t>(tensor, array->mutable_int_val());
      break;
    case tensorflow::DT_UINT8:
      Copy<uint8_t>(tensor, array->mutable_int_val());
      break;
    case tensorflow::DT_INT64:
      Copy<int64_t>(tensor, array->mutable_int64_val());
      break;
    case tensorflow::DT_BOOL:
      Copy<bool>(tensor, array->mutable_bool_val());
      break;
    case tensorflow::DT_STRING: {
      const auto flat = tensor.flat<tensorflow::tstring>();
      array->mutable_string_val()->Reserve(flat.size());
      for (int64_t i = 0; i < flat.size(); ++i) {
        array->add_string_val(flat(i).data(), flat(i).size());
      }
      break;
    }
    default:
      return InvalidArgument("output \"", name, "\" has dtype ",
                             tensorflow::DataTypeString(tensor.dtype()),
                             ", which ArrayProto cannot hold");
  }
  return tensorflow::OkStatus();
}

}  // namespace processor
}  // namespace deeprec
