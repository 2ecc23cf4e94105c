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
template <typename T>
inline void ApplyAdam(T* var, T* m, T* v, const T* grad, int64_t dim, T lr,
                      T beta1, T beta2, T epsilon) {
  for (int64_t d = 0; d < dim; ++d) {
    m[d] = m[d] * beta1 + grad[d] * (T(1) - beta1);
    v[d] = v[d] * beta2 + grad[d] * grad[d] * (T(1) - beta2);
    var[d] -= lr * m[d] / (std::sqrt(v[d]) + epsilon);
  }
}

// AdagradDecay: the accumulator is first multiplied by `decay` (the decay
// rate to the power of the decay periods since the row's last update; 1 when
// none passed) and kept at or above `baseline`.
template <typename T>
inline void ApplyAdagradDecay(T* var, T* accum, const T* grad, int64_t dim,
                              T lr, T decay, T baseline) {
  for (int64_t d = 0; d < dim; ++d) {
    if (decay != T(1)) accum[d] = std::fmax(accum[d] * decay, baseline);
    accum[d] += grad[d] * grad[d];
    var[d] -= lr * grad[d] / std::sqrt(accum[d]);
  }
}

// Decay periods of `step` with period length `period`.
inline int64_t DecayPeriod(int64_t step, int64_t period) {
  return step / period;
}

// rate^(periods elapsed from `from_step` to `to_step`); 1 when `from_step` is
// negative (a row never updated has nothing to decay).
inline double DecayFactor(int64_t from_step, int64_t to_step, int64_t period,
                          double rate) {
  if (from_step < 0) return 1.0;
  const int64_t periods =
      DecayPeriod(to_step, period) - DecayPeriod(from_step, period);
  return periods > 0 ? std::pow(rate, static_cast<double>(periods)) : 1.0;
}

// Adam with the moments and bias-corrected step `alpha` (as in ApplyAdam),
// plus decoupled weight decay of the old value (Loshchilov & Hutter).
template <typename T>
inline void ApplyAdamW(T* var, T* m, T* v, const T* grad, int64_t dim, T alpha,
                       T beta1, T beta2, T epsilon, T weight_decay) {
  for (int64_t d = 0; d < dim; ++d) {
    m[d] = m[d] * beta1 + grad[d] * (T(1) - beta1);
    v[d] = v[d] * beta2 + grad[d] * grad[d] * (T(1) - beta2);
    var[d] -=
        weight_decay * var[d] + alpha * m[d] / (std::sqrt(v[d]) + epsilon);
  }
}

// AdamAsync's sparse RMSProp: `v` is the mean square (decay beta2), `m` the
// momentum (beta1) of the scaled gradient.
template <typename T>
inline void ApplyRmsPropAsync(T* var, T* m, T* v, const T* grad, int64_t dim,
                              T lr, T beta1, T beta2, T epsilon) {
  for (int64_t d = 0; d < dim; ++d) {
    v[d] = v[d] * beta2 + grad[d] * grad[d] * (T(1) - beta2);
    m[d] = m[d] * beta1 + lr * grad[d] / std::sqrt(v[d] + epsilon);
    var[d] -= m[d];
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
