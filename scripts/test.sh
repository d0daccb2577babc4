#!/usr/bin/env bash
# Builds kck if needed and runs every test with ctest.
#
# Usage (from anywhere): bash scripts/test.sh [--sanitize]
#   (default)   ./build: Release, warnings are errors (as scripts/setup.sh)
#   --sanitize  ./build-asan: Debug with AddressSanitizer, LeakSanitizer and
#               UndefinedBehaviorSanitizer, built with clang-14 (installed
#               when missing, as scripts/fuzz.sh does: it builds this tree
#               in 40 % of GCC 12's time); any finding fails the test. The
#               torture suite (tests/torture, ~2 min in Release) is left to
#               the Release run to keep CI under 15 minutes.
#
# Needs the packages of scripts/setup.sh; the tests start their own
# PostgreSQL. The exit code is ctest's.
set -euo pipefail

usage() {
  echo "usage: bash scripts/test.sh [--sanitize]"
}

sanitize=0
for arg in "$@"; do
  case "$arg" in
    --sanitize) sanitize=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "test.sh: unknown argument \"$arg\"" >&2
      usage >&2
      exit 2
      ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { echo "==> $*"; }

if ((sanitize)); then
  # shellcheck source=scripts/clang.sh
  source scripts/clang.sh
  need_clang test.sh
  export CC=clang-14 CXX=clang++-14
  build_dir=build-asan
  # A tree configured with another compiler (GCC, before) starts over.
  if [[ -f $build_dir/CMakeCache.txt ]] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang++-14' "$build_dir/CMakeCache.txt"; then
    rm -rf "$build_dir"
  fi
  skip=(-E torture)
  targets=(--target kck kck_unit_tests kck_integration_tests)
  options=(-DCMAKE_BUILD_TYPE=Debug -DKCK_SANITIZE=ON -DKCK_WERROR=ON)
  export ASAN_OPTIONS=detect_leaks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  build_dir=build
  skip=()
  targets=()
  options=(-DCMAKE_BUILD_TYPE=Release -DKCK_WERROR=ON)
fi

# An existing build directory keeps the generator it was made with.
generator=()
[[ -f "$build_dir/CMakeCache.txt" ]] || generator=(-G Ninja)
step "configure ./$build_dir (${options[*]})"
cmake -S . -B "$build_dir" "${generator[@]}" "${options[@]}"
step "build ./$build_dir"
cmake --build "$build_dir" "${targets[@]}"

step "ctest ./$build_dir"
status=0
# Three shards at a time (each starts its own PostgreSQL cluster; see
# tests/CMakeLists.txt): the suites wait on the server, child processes and
# timers more than they compute. On 2 cores the Release run took 163 s so,
# 178 s with no start order and ~190 s as two unsharded suites at a time.
ctest --test-dir "$build_dir" --output-on-failure --parallel 3 "${skip[@]}" || status=$?
step "ctest exit $status"
exit "$status"
