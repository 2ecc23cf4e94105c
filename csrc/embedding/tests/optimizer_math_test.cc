// Each per-row optimizer rule against a straightforward double-precision
// reference of the TensorFlow update formulas, over several steps.
#include "csrc/embedding/optimizer_math.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "csrc/embedding/tests/check.h"

namespace emb = deeprec::embedding;

namespace {

constexpr double kRel = 1e-6;
constexpr int kDim = 5;
constexpr int kSteps = 6;

// Deterministic gradients of mixed sign and magnitude, one row per step.
std::vector<float> Grad(int step) {
  std::vector<float> g(kDim);
  for (int d = 0; d < kDim; ++d) {
    const double x = std::sin(1.7 * (step + 1) + 0.9 * d) * (0.3 + 0.4 * d);
    g[d] = static_cast<float>(x);
  }
  return g;
}

std::vector<float> InitialVar() { return {0.5f, -0.25f, 1.0f, -1.5f, 0.125f}; }

// Normwise relative check: every element within kRel of the reference,
// relative to the row's largest reference magnitude. (A purely elementwise
// relative bound is not meaningful for an element produced by cancellation,
// e.g. a momentum accumulator crossing zero, where float rounding of the
// larger terms dominates.)
void ExpectClose(const std::vector<float>& got, const std::vector<double>& want,
                 const char* what, int step) {
  double scale = 0;
  for (int d = 0; d < kDim; ++d) scale = std::fmax(scale, std::fabs(want[d]));
  for (int d = 0; d < kDim; ++d) {
    const bool ok =
        !std::isnan(got[d]) && std::fabs(got[d] - want[d]) <= kRel * scale;
    if (!ok) {
      deeprec_test::ReportFailure(
          __FILE__, __LINE__,
          std::string(what) + " step " + std::to_string(step) + " d " +
              std::to_string(d) + ": " + deeprec_test::Show(got[d]) + " vs " +
              deeprec_test::Show(want[d]));
    }
  }
}

// Hyperparameters reach the kernels as floats; the reference uses exactly
// those values (in double), so e.g. 1 - 0.999f is compared like for like.
double F(double x) { return static_cast<float>(x); }

std::vector<double> ToDouble(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

}  // namespace

TEST(GradientDescentExact) {
  std::vector<float> var = {1.0f, -2.0f, 0.5f};
  const std::vector<float> grad = {0.5f, -1.0f, 2.0f};
  emb::ApplyGradientDescent(var.data(), grad.data(), 3, 0.25f);
  CHECK(var == (std::vector<float>{0.875f, -1.75f, 0.0f}));
}

TEST(GradientDescent) {
  std::vector<float> var = InitialVar();
  std::vector<double> ref = ToDouble(var);
  const double lr = F(0.05);
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<float> g = Grad(s);
    emb::ApplyGradientDescent(var.data(), g.data(), kDim,
                              static_cast<float>(lr));
    for (int d = 0; d < kDim; ++d) ref[d] -= lr * g[d];
    ExpectClose(var, ref, "var", s);
  }
}

TEST(AdagradExact) {
  // accum 1 + 3^2 = 10? Use values with exact square roots: accum 0 + 4 -> 2.
  std::vector<float> var = {1.0f};
  std::vector<float> accum = {0.0f};
  const std::vector<float> grad = {2.0f};
  emb::ApplyAdagrad(var.data(), accum.data(), grad.data(), 1, 0.5f);
  CHECK_EQ(accum[0], 4.0f);
  CHECK_EQ(var[0], 0.5f);  // 1 - 0.5 * 2 / sqrt(4)
}

TEST(Adagrad) {
  std::vector<float> var = InitialVar();
  std::vector<float> accum(kDim, 0.1f);
  std::vector<double> rv = ToDouble(var), ra = ToDouble(accum);
  const double lr = F(0.1);
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<float> g = Grad(s);
    emb::ApplyAdagrad(var.data(), accum.data(), g.data(), kDim,
                      static_cast<float>(lr));
    for (int d = 0; d < kDim; ++d) {
      ra[d] += static_cast<double>(g[d]) * g[d];
      rv[d] -= lr * g[d] / std::sqrt(ra[d]);
    }
    ExpectClose(var, rv, "var", s);
    ExpectClose(accum, ra, "accum", s);
  }
}

void MomentumCase(bool nesterov) {
  std::vector<float> var = InitialVar();
  std::vector<float> accum(kDim, 0.0f);
  std::vector<double> rv = ToDouble(var), ra(kDim, 0.0);
  const double lr = F(0.05), momentum = F(0.9);
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<float> g = Grad(s);
    emb::ApplyMomentum(var.data(), accum.data(), g.data(), kDim,
                       static_cast<float>(lr), static_cast<float>(momentum),
                       nesterov);
    for (int d = 0; d < kDim; ++d) {
      ra[d] = ra[d] * momentum + g[d];
      rv[d] -= nesterov ? g[d] * lr + ra[d] * momentum * lr : lr * ra[d];
    }
    ExpectClose(var, rv, nesterov ? "nesterov var" : "var", s);
    ExpectClose(accum, ra, "accum", s);
  }
}

TEST(Momentum) { MomentumCase(false); }
TEST(MomentumNesterov) { MomentumCase(true); }

TEST(Adam) {
  std::vector<float> var = InitialVar();
  std::vector<float> m(kDim, 0.0f), v(kDim, 0.0f);
  std::vector<double> rv = ToDouble(var), rm(kDim, 0.0), rvv(kDim, 0.0);
  const double lr = 0.01, beta1 = F(0.9), beta2 = F(0.999), eps = F(1e-8);
  for (int s = 0; s < kSteps; ++s) {
    const int t = s + 1;
    const double lr_t =
        F(lr * std::sqrt(1 - std::pow(beta2, t)) / (1 - std::pow(beta1, t)));
    const std::vector<float> g = Grad(s);
    emb::ApplyAdam(var.data(), m.data(), v.data(), g.data(), kDim,
                   static_cast<float>(lr_t), static_cast<float>(beta1),
                   static_cast<float>(beta2), static_cast<float>(eps));
    for (int d = 0; d < kDim; ++d) {
      // TensorFlow's form: m += (g - m)(1 - beta1), v += (g^2 - v)(1 - beta2).
      rm[d] += (g[d] - rm[d]) * (1 - beta1);
      rvv[d] += (static_cast<double>(g[d]) * g[d] - rvv[d]) * (1 - beta2);
      rv[d] -= lr_t * rm[d] / (std::sqrt(rvv[d]) + eps);
    }
    ExpectClose(var, rv, "var", s);
    ExpectClose(m, rm, "m", s);
    ExpectClose(v, rvv, "v", s);
  }
}

namespace {

void FtrlCase(double lr, double l1, double l2, double shrinkage,
              double lr_power, const char* name) {
  lr = F(lr);
  l1 = F(l1);
  l2 = F(l2);
  shrinkage = F(shrinkage);
  lr_power = F(lr_power);
  std::vector<float> var = InitialVar();
  std::vector<float> accum(kDim, 0.1f), linear(kDim, 0.0f);
  std::vector<double> rv = ToDouble(var), ra = ToDouble(accum), rl(kDim, 0.0);
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<float> g = Grad(s);
    emb::ApplyFtrl(var.data(), accum.data(), linear.data(), g.data(), kDim,
                   static_cast<float>(lr), static_cast<float>(l1),
                   static_cast<float>(l2), static_cast<float>(shrinkage),
                   static_cast<float>(lr_power));
    for (int d = 0; d < kDim; ++d) {
      // TensorFlow ApplyFtrlV2.
      const double gs = g[d] + 2 * shrinkage * rv[d];
      const double new_accum = ra[d] + static_cast<double>(g[d]) * g[d];
      rl[d] +=
          gs - (std::pow(new_accum, -lr_power) - std::pow(ra[d], -lr_power)) /
                   lr * rv[d];
      const double quadratic = std::pow(new_accum, -lr_power) / lr + 2 * l2;
      rv[d] = std::fabs(rl[d]) > l1
                  ? ((rl[d] > 0 ? l1 : -l1) - rl[d]) / quadratic
                  : 0.0;
      ra[d] = new_accum;
    }
    ExpectClose(var, rv, name, s);
    ExpectClose(accum, ra, name, s);
    ExpectClose(linear, rl, name, s);
  }
}

}  // namespace

TEST(Ftrl) { FtrlCase(0.1, 0.0, 0.0, 0.0, -0.5, "ftrl plain"); }
TEST(FtrlL1L2) { FtrlCase(0.1, 0.05, 0.2, 0.0, -0.5, "ftrl l1 l2"); }
TEST(FtrlShrinkage) { FtrlCase(0.2, 0.01, 0.1, 0.3, -0.5, "ftrl shrinkage"); }
TEST(FtrlLrPower) { FtrlCase(0.1, 0.02, 0.05, 0.1, -0.25, "ftrl lr_power"); }
TEST(FtrlLrPowerZero) { FtrlCase(0.1, 0.0, 0.1, 0.0, 0.0, "ftrl lr_power 0"); }

// With |linear| <= l1 the weight is exactly zero.
TEST(FtrlL1Sparsity) {
  std::vector<float> var = {0.0f};
  std::vector<float> accum = {1.0f}, linear = {0.0f};
  const std::vector<float> grad = {0.5f};
  emb::ApplyFtrl(var.data(), accum.data(), linear.data(), grad.data(), 1, 0.1f,
                 1.0f, 0.0f, 0.0f, -0.5f);
  CHECK_EQ(linear[0], 0.5f);
  CHECK_EQ(var[0], 0.0f);
  CHECK_EQ(accum[0], 1.25f);
}

// Periods are whole multiples of the period length; a row never updated
// (step -1) has nothing to decay.
TEST(DecayFactorCountsPeriodsBetweenUpdates) {
  CHECK_EQ(emb::DecayFactor(-1, 500, 100, 0.5), 1.0);
  CHECK_EQ(emb::DecayFactor(0, 99, 100, 0.5), 1.0);
  CHECK_EQ(emb::DecayFactor(99, 100, 100, 0.5), 0.5);
  CHECK_EQ(emb::DecayFactor(150, 420, 100, 0.5), 0.125);  // periods 1 -> 4
  CHECK_EQ(emb::DecayFactor(420, 420, 100, 0.5), 1.0);
}

TEST(AdagradDecayKeepsTheBaseline) {
  std::vector<float> var = {1.0f, 1.0f}, accum = {0.4f, 2.0f};
  const std::vector<float> grad = {0.0f, 1.0f};
  emb::ApplyAdagradDecay(var.data(), accum.data(), grad.data(), 2, 0.5f, 0.5f,
                         0.3f);
  CHECK_EQ(accum[0], 0.3f);  // 0.2 raised to the baseline
  CHECK_EQ(accum[1], 2.0f);  // 1.0 + 1
  CHECK_EQ(var[0], 1.0f);
  CHECK_EQ(var[1], 1.0f - 0.5f / std::sqrt(2.0f));
}

TEST(AdamWDecaysTheOldValue) {
  std::vector<float> var = {2.0f}, m = {0.0f}, v = {0.0f};
  const std::vector<float> grad = {0.0f};
  emb::ApplyAdamW(var.data(), m.data(), v.data(), grad.data(), 1, 0.1f, 0.9f,
                  0.999f, 1e-8f, 0.25f);
  CHECK_EQ(var[0], 1.5f);  // zero gradient: only the decay moves it
}

TEST(RmsPropAsync) {
  std::vector<float> var = {1.0f}, m = {0.5f}, v = {1.0f};
  const std::vector<float> grad = {2.0f};
  emb::ApplyRmsPropAsync(var.data(), m.data(), v.data(), grad.data(), 1, 0.1f,
                         0.5f, 0.75f, 0.0f);
  CHECK_EQ(v[0], 1.75f);  // 0.75 + 4 * 0.25
  const float expected_m = 0.25f + 0.1f * 2.0f / std::sqrt(1.75f);
  CHECK_EQ(m[0], expected_m);
  CHECK_EQ(var[0], 1.0f - expected_m);
}

int main() { return deeprec_test::RunAllTests(); }
