#!/usr/bin/env bash
# Installs the Debian packages rescnn needs to build and test; does nothing
# (and prints nothing) when they are all present.
#
#   bash scripts/install-deps.sh               # build + test dependencies
#   bash scripts/install-deps.sh --with-torch  # also PyTorch (golden fixtures, benchmarks)
#   bash scripts/install-deps.sh --with-fuzzing  # also clang and libFuzzer (fuzz/run.sh)
#   bash scripts/install-deps.sh --with-photos   # also python3-skimage's photographs (test_image_codecs)
#   bash scripts/install-deps.sh --with-onnx     # also the ONNX runtimes the onnx:* tests run: python3-onnx,
#                                                # python3-opencv, npm onnxruntime-node (into tests/onnx/node_modules)
set -euo pipefail

packages=(build-essential cmake libeigen3-dev catch2 zlib1g-dev libcli11-dev libbenchmark-dev dataset-fashion-mnist
  libpng-dev libjpeg-dev libopenmpi-dev openmpi-bin)

with_onnx=0
for arg in "$@"; do
  case "$arg" in
    --with-torch) packages+=(python3-torch python3-torchvision) ;;
    --with-fuzzing) packages+=(clang libclang-rt-14-dev) ;;
    --with-photos) packages+=(python3-skimage) ;;
    --with-onnx) with_onnx=1; packages+=(python3-onnx python3-opencv)
      command -v npm >/dev/null 2>&1 || packages+=(npm) ;;
    -h|--help)
      sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
      exit 0 ;;
    *) echo "install-deps.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

is_installed() {
  local status
  status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
  [[ "$status" == "install ok installed" ]]
}

missing=()
for pkg in "${packages[@]}"; do
  is_installed "$pkg" || missing+=("$pkg")
done

# ONNX Runtime's CPU build ships inside the npm package; its install script
# only fetches the CUDA provider (unreachable offline, never needed here),
# hence --ignore-scripts. The lock file pins the version.
install_onnxruntime_node() {
  ((with_onnx)) || return 0
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/onnx"
  [[ -f "$dir/node_modules/onnxruntime-node/package.json" ]] && return 0
  echo "install-deps.sh: installing onnxruntime-node into $dir/node_modules"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
}

if ((${#missing[@]} == 0)); then
  install_onnxruntime_node
  exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
  else
    echo "install-deps.sh: not root and sudo is not available; install these packages: ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq < /dev/null
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" < /dev/null
install_onnxruntime_node
