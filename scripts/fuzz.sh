#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang and runs each one for
# a fixed time over a copy of its seed corpus (the committed corpus does not
# grow). Fails on any crash, leak, timeout or sanitizer finding; the input
# that found it is kept in build-fuzz/artifacts/.
#
# Usage (from anywhere): bash scripts/fuzz.sh [SECONDS]
#   SECONDS  how long each target runs (default 20)
#
# Installs clang-14 and libclang-rt-14-dev when missing (as root, like
# scripts/setup.sh); the other packages are scripts/setup.sh's. One target
# runs at a time, on one core.
set -euo pipefail

usage() {
  echo "usage: bash scripts/fuzz.sh [SECONDS]"
}

seconds=20
case "${1:-}" in
  "") ;;
  -h | --help)
    usage
    exit 0
    ;;
  *[!0-9]* | 0)
    echo "fuzz.sh: SECONDS must be a positive number, got \"$1\"" >&2
    usage >&2
    exit 2
    ;;
  *) seconds=$1 ;;
esac
if (($# > 1)); then
  usage >&2
  exit 2
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { echo "==> $*"; }

# shellcheck source=scripts/clang.sh
source scripts/clang.sh
need_clang fuzz.sh

build_dir=build-fuzz
targets=(key_codec config planner)

# An existing build directory keeps the generator it was made with.
generator=()
[[ -f "$build_dir/CMakeCache.txt" ]] || generator=(-G Ninja)
# -O1 and line tables: fast to build, fast enough to fuzz, usable stacks.
step "configure ./$build_dir (clang-14, KCK_FUZZ=ON)"
CC=clang-14 CXX=clang++-14 cmake -S . -B "$build_dir" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
  -DKCK_FUZZ=ON -DKCK_TESTS=OFF
step "build ./$build_dir (fuzz targets only)"
cmake --build "$build_dir" --target kck_fuzz

artifacts=$build_dir/artifacts
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

summary=()
status=0
for name in "${targets[@]}"; do
  corpus=$work/$name
  cp -r "tests/fuzz/corpus/$name" "$corpus"
  log=$work/$name.log
  step "fuzz $name for ${seconds}s"
  target_status=0
  # -max_len: inputs (keys, configs, payloads) are small; 64 KB is plenty
  # and keeps a slow input from passing for a hang. -timeout: one input
  # taking longer than 10 s is a finding.
  "$build_dir/tests/fuzz/${name}_fuzz" "$corpus" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$name-" >"$log" 2>&1 || target_status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  corpus_size=$(find "$corpus" -type f | wc -l)
  if ((target_status == 0)); then
    line="$(printf '%-10s ok     %9s runs in %ss, %s, corpus %d' "$name" "${runs:-?}" "${took:-?}" "${cov:-cov: ?}" "$corpus_size")"
  else
    status=1
    line="$(printf '%-10s FAILED %9s runs, exit %d, input in %s' "$name" "${runs:-?}" "$target_status" "$artifacts/")"
    # The finding: libFuzzer's report from the first error line on.
    sed -n '/ERROR\|==[0-9]*==\|_fuzz: \|terminate called/,$p' "$log" | head -60 >&2
  fi
  echo "$line"
  summary+=("$line")
done

step "fuzz summary (${seconds}s per target)"
for line in "${summary[@]}"; do echo "    $line"; done
exit "$status"
