#!/usr/bin/env bash
# Installs every Debian package quiver needs to build, test and benchmark.
# Runs `apt-get update` once, then installs only what is missing.
set -euo pipefail
PKGS=(
  meson ninja-build pkg-config gcc clang libclang-rt-14-dev
  libdnnl-dev liburing-dev libnuma-dev dpdk-dev
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev
  libcjson-dev libmicrohttpd-dev libyaml-dev python3-dev zlib1g-dev
  libcurl4-openssl-dev libxml2-dev libssl-dev
  prometheus systemd tmux
  python3-onnx python3-yaml python3-numpy python3-torch python3-xgboost libxgboost-dev
  iproute2 util-linux procps iputils-ping
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
