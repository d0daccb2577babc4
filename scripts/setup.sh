#!/usr/bin/env bash
# Sets kck up on a fresh Debian 12 machine: installs the build and test
# dependencies, builds ./build (Release, warnings are errors), installs the
# binary as /usr/local/bin/kck and the C capture module into PostgreSQL's
# library directory, and runs `kck demo`.
#
# Usage (as root, from anywhere): bash scripts/setup.sh [--no-demo]
#   --no-demo  stop after installing the binary (CI runs the tests instead)
#
# Safe to run again: packages already installed are left alone, the build is
# incremental and the install overwrites the binary.
set -euo pipefail

usage() {
  echo "usage: bash scripts/setup.sh [--no-demo]   (as root)"
}

run_demo=1
for arg in "$@"; do
  case "$arg" in
    --no-demo) run_demo=0 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "setup.sh: unknown argument \"$arg\"" >&2
      usage >&2
      exit 2
      ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { echo "==> $*"; }

# systemd only for systemd-analyze, which the unit file's test runs.
packages=(
  build-essential cmake ninja-build pkg-config
  libpq-dev libuv1-dev libsimdjson-dev nlohmann-json3-dev libspdlog-dev
  libcli11-dev libsystemd-dev libgtest-dev libcurl4-openssl-dev
  postgresql-15 postgresql-server-dev-15
  python3-django python3-psycopg2 python3-pytest python3-venv python3-setuptools
  systemd
)

if [[ $EUID -ne 0 ]]; then
  echo "setup.sh: must run as root: it installs packages and /usr/local/bin/kck" >&2
  exit 2
fi

missing=()
for package in "${packages[@]}"; do
  if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)" != installed ]]; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} == 0)); then
  step "packages: all ${#packages[@]} installed"
else
  export DEBIAN_FRONTEND=noninteractive
  step "apt-get update"
  apt-get update -q
  step "apt-get install ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# An existing ./build keeps the generator it was made with.
generator=()
[[ -f build/CMakeCache.txt ]] || generator=(-G Ninja)
step "configure ./build (Release, KCK_WERROR=ON)"
cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DKCK_WERROR=ON
step "build ./build"
cmake --build build

step "install /usr/local/bin/kck"
install -D -m 0755 build/kck /usr/local/bin/kck
# The C capture, where the local PostgreSQL loads it ($libdir): `kck install`
# as a superuser then captures in C (docs/DESIGN.md, "Capture in C").
libdir=$(pg_config --pkglibdir)
step "install $libdir/kck_capture.so"
install -D -m 0755 build/kck_capture.so "$libdir/kck_capture.so"

if ((run_demo)); then
  step "kck demo"
  ./build/kck demo
fi
step "setup done"
