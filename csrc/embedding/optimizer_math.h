// Per-row update rules of the optimizers that train EmbeddingVariables.
// Each function updates one record's columns in place from one gradient row
// and follows the arithmetic of TensorFlow's sparse apply kernels, so an
// EmbeddingVariable and a dense tf.Variable trained on the same batches agree.
#ifndef DEEPREC_EMBEDDING_OPTIMIZER_MATH_H_
#define DEEPREC_EMBEDDING_OPTIMIZER_MATH_H_

#include <cmath>
#include <cstdint>

namespace deeprec {
namespace embedding {

inline void ApplyGradientDescent(float* var, const float* grad, int64_t dim,
                                 float lr) {
  for (int64_t d = 0; d < dim; ++d) var[d] -= lr * grad[d];
}

inline void ApplyAdagrad(float* var, float* accum, const float* grad,
                         int64_t dim, float lr) {
  for (int64_t d = 0; d < dim; ++d) {
    accum[d] += grad[d] * grad[d];
    var[d] -= lr * grad[d] * (1.0f / std::sqrt(accum[d]));
  }
}

inline void ApplyMomentum(float* var, float* accum, const float* grad,
                          int64_t dim, float lr, float momentum,
                          bool use_nesterov) {
  for (int64_t d = 0; d < dim; ++d) {
    accum[d] = accum[d] * momentum + grad[d];
    if (use_nesterov) {
      var[d] -= grad[d] * lr + accum[d] * momentum * lr;
    } else {
      var[d] -= lr * accum[d];
    }
  }
}

// `lr` is the bias-corrected step lr * sqrt(1 - beta2^t) / (1 - beta1^t).
inline void ApplyAdam(float* var, float* m, float* v, const float* grad,
                      int64_t dim, float lr, float beta1, float beta2,
                      float epsilon) {
  for (int64_t d = 0; d < dim; ++d) {
    m[d] = m[d] * beta1 + grad[d] * (1.0f - beta1);
    v[d] = v[d] * beta2 + grad[d] * grad[d] * (1.0f - beta2);
    var[d] -= lr * m[d] / (std::sqrt(v[d]) + epsilon);
  }
}

// FTRL-Proximal with optional L2 shrinkage (TensorFlow's FtrlV2 rule).
inline void ApplyFtrl(float* var, float* accum, float* linear,
                      const float* grad, int64_t dim, float lr, float l1,
                      float l2, float l2_shrinkage, float lr_power) {
  const bool sqrt_power = lr_power == -0.5f;
  for (int64_t d = 0; d < dim; ++d) {
    const float g = grad[d];
    const float g_shrunk = g + 2.0f * l2_shrinkage * var[d];
    const float new_accum = accum[d] + g * g;
    const float new_pow =
        sqrt_power ? std::sqrt(new_accum) : std::pow(new_accum, -lr_power);
    const float old_pow =
        sqrt_power ? std::sqrt(accum[d]) : std::pow(accum[d], -lr_power);
    linear[d] += g_shrunk - (new_pow - old_pow) / lr * var[d];
    const float clipped = std::fmax(std::fmin(linear[d], l1), -l1);
    var[d] = (clipped - linear[d]) / (new_pow / lr + 2.0f * l2);
    accum[d] = new_accum;
  }
}

}  // namespace embedding
}  // namespace deeprec

#endif  // DEEPREC_EMBEDDING_OPTIMIZER_MATH_H_
