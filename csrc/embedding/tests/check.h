// Minimal test harness for the engine tests: no external framework.
//
//   TEST(Name) { CHECK(cond); CHECK_EQ(a, b); CHECK_THROWS(expr, Type); }
//   int main() { return RunAllTests(); }
//
// A failed check prints file:line and the values, and marks the current test
// failed (the test keeps running so one run reports every broken check, up to
// a cap). Every test prints one "[ OK ]" / "[FAIL]" line; the binary exits
// non-zero when any test failed.
#ifndef DEEPREC_EMBEDDING_TESTS_CHECK_H_
#define DEEPREC_EMBEDDING_TESTS_CHECK_H_

#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace deeprec_test {

struct TestCase {
  const char* name;
  std::function<void()> fn;
};

inline std::vector<TestCase>& Registry() {
  static std::vector<TestCase> tests;
  return tests;
}

inline int& FailuresInCurrentTest() {
  static int failures = 0;
  return failures;
}

struct Registrar {
  Registrar(const char* name, std::function<void()> fn) {
    Registry().push_back({name, std::move(fn)});
  }
};

template <typename T>
std::string Show(const T& v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}
inline std::string Show(bool v) { return v ? "true" : "false"; }

// Safe to call from several threads (the stress test checks in workers).
inline void ReportFailure(const char* file, int line, const std::string& msg) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  int& failures = FailuresInCurrentTest();
  if (failures < 20)
    std::fprintf(stderr, "  %s:%d: %s\n", file, line, msg.c_str());
  if (failures == 20) std::fprintf(stderr, "  (further failures suppressed)\n");
  ++failures;
}

inline bool RelClose(double actual, double expected, double rel) {
  if (std::isnan(actual) || std::isnan(expected)) return false;
  const double scale = std::fmax(std::fabs(expected), 1e-30);
  return std::fabs(actual - expected) <= rel * scale ||
         std::fabs(actual - expected) <= 1e-12;
}

inline int RunAllTests() {
  int failed = 0;
  for (const TestCase& t : Registry()) {
    FailuresInCurrentTest() = 0;
    const auto start = std::chrono::steady_clock::now();
    try {
      t.fn();
    } catch (const std::exception& e) {
      ReportFailure(__FILE__, __LINE__,
                    std::string("uncaught exception: ") + e.what());
    } catch (...) {
      ReportFailure(__FILE__, __LINE__, "uncaught non-std exception");
    }
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - start)
                          .count();
    const bool ok = FailuresInCurrentTest() == 0;
    std::printf("[%s] %s (%.1f ms)\n", ok ? " OK " : "FAIL", t.name, ms);
    std::fflush(stdout);
    if (!ok) ++failed;
  }
  std::printf("%d/%zu tests passed\n",
              static_cast<int>(Registry().size()) - failed, Registry().size());
  return failed == 0 ? 0 : 1;
}

}  // namespace deeprec_test

#define DR_CONCAT_INNER(a, b) a##b
#define DR_CONCAT(a, b) DR_CONCAT_INNER(a, b)

#define TEST(name)                                                           \
  static void name();                                                        \
  static ::deeprec_test::Registrar DR_CONCAT(registrar_, name)(#name, name); \
  static void name()

#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond))                                                          \
      ::deeprec_test::ReportFailure(__FILE__, __LINE__,                   \
                                    std::string("CHECK(") + #cond + ")"); \
  } while (0)

#define DR_CHECK_OP(a, b, op)                                                  \
  do {                                                                         \
    const auto& dr_a_ = (a);                                                   \
    const auto& dr_b_ = (b);                                                   \
    if (!(dr_a_ op dr_b_))                                                     \
      ::deeprec_test::ReportFailure(__FILE__, __LINE__,                        \
                                    std::string(#a " " #op " " #b ": ") +      \
                                        ::deeprec_test::Show(dr_a_) + " vs " + \
                                        ::deeprec_test::Show(dr_b_));          \
  } while (0)

#define CHECK_EQ(a, b) DR_CHECK_OP(a, b, ==)
#define CHECK_NE(a, b) DR_CHECK_OP(a, b, !=)
#define CHECK_LT(a, b) DR_CHECK_OP(a, b, <)
#define CHECK_LE(a, b) DR_CHECK_OP(a, b, <=)
#define CHECK_GE(a, b) DR_CHECK_OP(a, b, >=)

// Relative closeness, for float results against a double reference.
#define CHECK_NEAR_REL(actual, expected, rel)          \
  do {                                                 \
    const double dr_x_ = (actual);                     \
    const double dr_y_ = (expected);                   \
    if (!::deeprec_test::RelClose(dr_x_, dr_y_, rel))  \
      ::deeprec_test::ReportFailure(                   \
          __FILE__, __LINE__,                          \
          std::string(#actual " ~= " #expected ": ") + \
              ::deeprec_test::Show(dr_x_) + " vs " +   \
              ::deeprec_test::Show(dr_y_));            \
  } while (0)

#define CHECK_THROWS(expr, ExceptionType)                       \
  do {                                                          \
    bool dr_thrown_ = false;                                    \
    try {                                                       \
      (void)(expr);                                             \
    } catch (const ExceptionType&) {                            \
      dr_thrown_ = true;                                        \
    } catch (...) {                                             \
    }                                                           \
    if (!dr_thrown_)                                            \
      ::deeprec_test::ReportFailure(                            \
          __FILE__, __LINE__,                                   \
          std::string(#expr " did not throw " #ExceptionType)); \
  } while (0)

#endif  // DEEPREC_EMBEDDING_TESTS_CHECK_H_
