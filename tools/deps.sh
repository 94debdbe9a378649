#!/usr/bin/env bash
# Makes sure the Debian packages pmalloc builds and tests with are installed.
# As root: installs what is missing with apt-get. Otherwise: prints the exact apt-get line
# and fails. Sourced by tools/run-tests and tools/run-demo.
pmalloc_deps() {
  local pkgs=(build-essential cmake ninja-build pkg-config libjemalloc-dev libjemalloc2
              libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
              clang-format clang-tidy "$@")  # version 14 in Debian 12 (tools/clang-tool)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "pmalloc: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      { echo "pmalloc: apt-get install failed" >&2; return 1; }
  else
    echo "pmalloc: missing packages; run as root:" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
    return 1
  fi
}
