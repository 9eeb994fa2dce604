#!/usr/bin/env bash
# Gathers what the CUDA build and the GPU check need but the GPU machine
# lacks into one git-ignored folder, .gpu-deps/, which travels with the
# working tree to that machine (the device tool's `carry`).
#
#   bash scripts/gpu-deps.sh
#
# The GPU machine has nvcc, CMake, ninja, a C++ compiler and a python3 with
# PyTorch and pip's cuDNN and NCCL wheels, and no package registry. So this
# copies, from this machine's Debian packages (installed first if missing):
#   prefix/include       Eigen 3.4, Catch2 2, CLI11 (header-only), zlib.h/zconf.h
#                        (and Catch2's small libCatch2WithMain.a, which its targets name)
#   prefix/share, lib    their CMake package files, laid out as under /usr, so
#                        that CMAKE_PREFIX_PATH=.gpu-deps/prefix finds them
#   prefix/lib/libz.a    zlib, for a machine whose libz.so.1 cannot be found
#   data/fashion-mnist   the four IDX files (for the training step)
# and writes MANIFEST: each package's version and the folder's size.
# Google Benchmark is left out: it is a compiled library, and only the CPU
# microbenchmarks (bench_layers) use it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dest=.gpu-deps
limit_mib=48  # the working tree travels with it, under 64 MiB in all

bash scripts/install-deps.sh < /dev/null

rm -rf "$dest"
mkdir -p "$dest/prefix/include" "$dest/prefix/lib/cmake" "$dest/prefix/share/cmake" "$dest/prefix/share/eigen3" \
  "$dest/data"

# copy SRC DEST_DIR: dereferencing links, so the folder is self-contained.
# SOURCES lists every SRC: gpu-check.sh --dry-run hides exactly those.
: > "$dest/SOURCES"
copy() {
  [[ -e $1 ]] || { echo "gpu-deps.sh: $1 is missing (is its package installed?)" >&2; exit 1; }
  cp -rL "$1" "$2"
  echo "$1" >> "$dest/SOURCES"
}
copy /usr/include/eigen3 "$dest/prefix/include/"
copy /usr/share/eigen3/cmake "$dest/prefix/share/eigen3/"
copy /usr/include/catch2 "$dest/prefix/include/"
copy /usr/lib/cmake/Catch2 "$dest/prefix/lib/cmake/"
copy /usr/lib/libCatch2WithMain.a "$dest/prefix/lib/"  # its CMake targets name it (rescnn does not link it)
copy /usr/include/CLI "$dest/prefix/include/"
copy /usr/share/cmake/CLI11 "$dest/prefix/share/cmake/"
copy /usr/include/zlib.h "$dest/prefix/include/"
copy /usr/include/zconf.h "$dest/prefix/include/"
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
copy "/usr/lib/$multiarch/libz.a" "$dest/prefix/lib/"
copy /usr/share/datasets/fashion-mnist "$dest/data/"

{
  echo "# .gpu-deps, made by scripts/gpu-deps.sh on $(date -u +%Y-%m-%dT%H:%MZ) from $(uname -n)"
  # The working tree travels without .git; the GPU check's report names this.
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
  for pkg in libeigen3-dev catch2 libcli11-dev zlib1g-dev dataset-fashion-mnist; do
    echo "$pkg $(dpkg-query -W -f='${Version}' "$pkg")"
  done
} > "$dest/MANIFEST"
size_kib=$(du -sk "$dest" | cut -f1)
echo "size $((size_kib / 1024)) MiB" >> "$dest/MANIFEST"
cat "$dest/MANIFEST"
if ((size_kib > limit_mib * 1024)); then
  echo "gpu-deps.sh: $dest is $((size_kib / 1024)) MiB, over the $limit_mib MiB it may take of the 64 MiB that travel" >&2
  exit 1
fi
echo "gpu-deps.sh: $dest is ready; name it in the device call's carry list"
