#!/usr/bin/env bash
# Builds the embedding-engine tests twice, with ASan+UBSan and with TSan, and
# runs them through CTest:
#
#   build/engine-asan   DEEPREC_SANITIZER=address
#   build/engine-tsan   DEEPREC_SANITIZER=thread
#
# Exits non-zero if any configure, build or test step fails (both builds are
# always attempted). Extra arguments are passed to ctest, e.g. `-R stress`.
# Environment: BUILD_ROOT (default <repo>/build), JOBS (default nproc),
# DEEPREC_STRESS_SECONDS (default 1.5).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
build_root="${BUILD_ROOT:-${repo}/build}"
jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
stress_seconds="${DEEPREC_STRESS_SECONDS:-1.5}"

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

failed=()
start_all=${SECONDS}
for sanitizer in address thread; do
  case "${sanitizer}" in
    address) dir="${build_root}/engine-asan" ;;
    thread) dir="${build_root}/engine-tsan" ;;
  esac
  echo "=== ${sanitizer}: ${dir}"
  start=${SECONDS}
  # A build dir made with another generator cannot be reconfigured in place.
  if [[ -f "${dir}/CMakeCache.txt" ]] && ! grep -q \
      "^CMAKE_GENERATOR:INTERNAL=${generator[1]:-Unix Makefiles}$" \
      "${dir}/CMakeCache.txt"; then
    rm -rf "${dir}"
  fi
  mkdir -p "${dir}"
  if ! cmake -S "${repo}" -B "${dir}" "${generator[@]}" \
      -DDEEPREC_SANITIZER="${sanitizer}" \
      -DDEEPREC_STRESS_SECONDS="${stress_seconds}" >"${dir}/configure.log" 2>&1
  then
    cat "${dir}/configure.log"
    echo "!!! ${sanitizer}: configure failed"
    failed+=("${sanitizer}:configure")
    continue
  fi
  if ! cmake --build "${dir}" -j "${jobs}"; then
    echo "!!! ${sanitizer}: build failed"
    failed+=("${sanitizer}:build")
    continue
  fi
  if ! ctest --test-dir "${dir}" --output-on-failure -j "${jobs}" "$@"; then
    echo "!!! ${sanitizer}: tests failed"
    failed+=("${sanitizer}:test")
  fi
  echo "=== ${sanitizer}: $((SECONDS - start)) s"
done

echo "=== total: $((SECONDS - start_all)) s"
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "PASSED: address+undefined and thread sanitizer builds"
