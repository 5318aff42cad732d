#!/usr/bin/env bash
# Installs fsvc's dependencies (Debian 12, as root), builds it into build/, and runs the demo.
#   bash install.sh            install + build + demo
#   FSVC_NO_APT=1 bash install.sh   skip apt-get (dependencies already present)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake pkg-config liblua5.4-dev lua5.4 lua-busted libopenblas-dev
          libreadline-dev libsndfile1-dev libsoxr-dev libkissfft-dev zlib1g-dev clang libclang-rt-14-dev)

if [ -z "${FSVC_NO_APT:-}" ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
  fi
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${FSVC_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"

if [ -z "${FSVC_NO_DEMO:-}" ]; then
  ./build/fsvc examples/train_tiny.lua
fi
