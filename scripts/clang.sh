# Sourced by scripts/fuzz.sh and scripts/test.sh --sanitize: installs
# clang-14 and its sanitizer runtimes when missing (as root, like
# scripts/setup.sh). Expects a step() function from the caller.
need_clang() {
  local caller=$1 package
  local packages=(clang-14 libclang-rt-14-dev)
  local missing=()
  for package in "${packages[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)" != installed ]]; then
      missing+=("$package")
    fi
  done
  ((${#missing[@]} > 0)) || return 0
  if [[ $EUID -ne 0 ]]; then
    echo "$caller: packages ${missing[*]} are missing: run as root to install them" >&2
    exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  step "apt-get update"
  apt-get update -q
  step "apt-get install ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}
