#!/usr/bin/env bash
# The GPU check: verifies the CUDA backend on a GPU machine in one call.
#
#   bash scripts/gpu-deps.sh                 # here, first: fills .gpu-deps/
#   bash scripts/gpu-check.sh [OUTDIR]       # on the GPU machine, from the repository root
#   bash scripts/gpu-check.sh --dry-run      # here (and in CI): build it as there, list the rest
#
# Steps, each under its own time limit; a step that fails or runs out of time
# does not stop the next, and the whole run keeps within GPU_CHECK_BUDGET_S
# (420 s; each later step gets what is left, up to its own limit), so that it
# fits one device call of 10 minutes with the machine's start-up:
#   1. env        the GPU, driver, nvcc, host compiler, cuDNN, NCCL and PyTorch versions
#   2. configure  the CUDA variant for sm_90 only, from .gpu-deps/ and what the machine has
#   3. build      rescnn_cuda_tests, bench_resnet and train_fashion_mnist, with all cores
#   4. ctest      ctest -L cuda with RESCNN_REQUIRE_GPU=1 (no GPU is a failure, not a skip)
#   5. bench      bench_resnet --device cuda and benchmarks/torch_resnet_bench.py,
#                 alternating, GPU_CHECK_ROUNDS (2) rounds: d2l ResNet-18 at 96x96 and
#                 resnet50 at 224x224, batch 128; rescnn in TF32 and fp32 (and once
#                 deterministic), PyTorch in TF32 (NCHW and channels_last) and fp32;
#                 in round 1 also bf16 and fp16 autocast (rescnn --precision, PyTorch
#                 --amp with channels_last, fp16 with loss scaling on both)
#   6. train      the d2l configuration (96x96) for 2 epochs on the real Fashion-MNIST
#   7. report     OUTDIR/gpu-<gpu>-<date>.md from the logs (scripts/gpu_report.py)
# OUTDIR (default: $OUT, else ./gpu-check-out) receives the report and the raw
# logs: env.log, build.log, ctest.log, bench.log, train.log.
#
# --dry-run, on a machine without a GPU: runs steps 1-3 exactly as on the GPU
# machine, with the system's copies of the carried dependencies hidden
# (a private mount namespace, where this runs as root), then prints the
# commands of steps 4-6 and checks that the report can be written. CI runs it
# so that the script cannot rot. GPU_CHECK_BUILD_DIR (build-gpu-check) and
# JOBS (all cores) can be set.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
root=$PWD

dry_run=0
outdir=${OUT:-$root/gpu-check-out}
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu-check.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    *) outdir=$arg ;;
  esac
done

deps=$root/.gpu-deps
if [[ ! -f $deps/MANIFEST ]]; then
  echo "gpu-check.sh: $deps is missing: run scripts/gpu-deps.sh on a machine with Debian's packages first," \
       "and carry .gpu-deps to this one" >&2
  exit 1
fi

# --dry-run: hide the system's copies of what .gpu-deps carries (its SOURCES,
# written by gpu-deps.sh), and Google Benchmark, which the GPU machine lacks,
# so that the build can only succeed from the carried folder, as there.
mapfile -t hidden < "$deps/SOURCES"
hidden+=(/usr/include/benchmark "/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/cmake/benchmark")
# (Not the -dev link libz.so: a bind mount onto a symbolic link lands on its
# target, the libz.so.1 that every program here loads. The build names its
# zlib explicitly instead.)
# Mounts are made only inside a mount namespace of this script's own (never
# in the one the machine runs in, whatever the environment says).
private_namespace() { [[ $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]]; }
if ((dry_run)) && [[ -z ${RESCNN_GPU_CHECK_HIDDEN:-} ]]; then
  if [[ $(id -u) -eq 0 ]] && unshare -m true 2>/dev/null; then
    export RESCNN_GPU_CHECK_HIDDEN=1
    exec unshare -m --propagation private bash "$root/scripts/gpu-check.sh" "$@"
  fi
  echo "gpu-check.sh --dry-run: cannot make a private mount namespace (needs root and unshare);" \
       "the system's copies of the carried dependencies stay visible" >&2
fi
if ((dry_run)) && [[ ${RESCNN_GPU_CHECK_HIDDEN:-} == 1 ]] && private_namespace; then
  empty=$(mktemp -d)
  for path in "${hidden[@]}"; do
    if [[ -L $path ]]; then echo "gpu-check.sh --dry-run: $path is a symbolic link, not hidden" >&2
    elif [[ -d $path ]]; then mount --bind "$empty" "$path"
    elif [[ -e $path ]]; then mount --bind /dev/null "$path"
    fi
  done
  echo "gpu-check.sh --dry-run: hidden from this build: ${hidden[*]}"
fi

build=${GPU_CHECK_BUILD_DIR:-$root/build-gpu-check}
jobs=${JOBS:-$(nproc)}
# The limits are the GPU machine's (16 cores); a dry run builds on whatever
# machine it is on (CI's 2 cores take about 6 minutes), so its build has time.
budget=${GPU_CHECK_BUDGET_S:-420}
build_limit=200
if ((dry_run)); then budget=${GPU_CHECK_BUDGET_S:-3000}; build_limit=2400; fi
rounds=${GPU_CHECK_ROUNDS:-2}
mkdir -p "$outdir"
for log in env build ctest bench train; do : > "$outdir/$log.log"; done  # this run's output only
steps_tsv=$(mktemp)
start=$SECONDS

# ---- the tools and libraries this machine has ----------------------------------
nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
python=$(command -v python3 || true)
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
# zlib: the machine's shared library if it has one (every Linux does, but not
# always its -dev link), else the static copy from .gpu-deps.
zlib=$(ldconfig -p 2>/dev/null | awk '/libz\.so\.1 .*x86-64/ {print $NF; exit}')
[[ -n $zlib ]] || zlib=$deps/prefix/lib/libz.a

# run_step NAME LIMIT LOG COMMAND: runs COMMAND (a bash string) appending to
# LOG, within min(LIMIT, what is left of the budget); records the outcome.
run_step() {
  local name=$1 limit=$2 log=$3 cmd=$4
  local left=$((budget - (SECONDS - start)))
  ((limit > left)) && limit=$left
  if ((limit < 10)); then
    printf '%s\tnot run: the %d s budget is spent\t0\t%d\n' "$name" "$budget" "$2" >> "$steps_tsv"
    echo "::: $name: not run, the budget is spent"
    return
  fi
  echo "::: $name (limit ${limit} s): $cmd"
  local t0=$SECONDS rc
  timeout -k 10 "$limit" bash -c "$cmd" >> "$log" 2>&1 < /dev/null
  rc=$?
  local status="ok"
  if ((rc == 124 || rc == 137)); then status="timed out"; elif ((rc != 0)); then status="failed (exit $rc)"; fi
  printf '%s\t%s\t%d\t%d\n' "$name" "$status" "$((SECONDS - t0))" "$limit" >> "$steps_tsv"
  echo "::: $name: $status in $((SECONDS - t0)) s"
  [[ $status == ok ]] || tail -n 30 "$log"
}

# ---- 1. env ------------------------------------------------------------------------
env_cmd=$(cat <<EOF
echo "date: \$(date -u +%Y-%m-%d)"
# The working tree travels without .git: gpu-deps.sh recorded the commit.
echo "git: \$(git -C '$root' rev-parse --short HEAD 2>/dev/null || sed -n 's/^commit //p' '$deps/MANIFEST')"
smi() { local v; v=\$(nvidia-smi --query-gpu=\$1 --format=csv,noheader 2>/dev/null | head -1); echo "\${v:-none (nvidia-smi: \$(command -v nvidia-smi || echo not found))}"; }
echo "gpu: \$(smi name,memory.total)"
echo "driver: \$(smi driver_version)"
echo "nvcc: \$('$nvcc' --version 2>/dev/null | grep -o 'release [0-9.]*, V[0-9.]*' || echo 'not found at $nvcc')"
echo "host compiler: \$(c++ --version 2>/dev/null | head -1)"
echo "cmake: \$(cmake --version | head -1)"
echo "cpu cores: \$(nproc)"
echo "zlib: $zlib"
if [[ -n '$python' ]]; then
  '$python' - <<'PY'
import importlib
try:
    import torch
    print("torch:", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available())
    try:
        import torchvision
        print("torchvision:", torchvision.__version__)
    except Exception as e:
        print("torchvision: not importable (the resnet50 PyTorch runs will fail):", e)
    print("cudnn: torch reports", torch.backends.cudnn.version())
    try:
        print("nccl: torch reports", ".".join(map(str, torch.cuda.nccl.version())))
    except Exception as e:
        print("nccl: not reported by torch:", e)
except Exception as e:
    print("torch: not importable:", e)
from importlib import metadata
for dist in ("nvidia-cudnn-cu13", "nvidia-cudnn-cu12", "nvidia-nccl-cu13", "nvidia-nccl-cu12"):
    try:
        print("wheel", dist, metadata.version(dist))
    except Exception:
        pass
for name in ("nvidia.cudnn", "nvidia.nccl", "nvidia.cublas", "nvidia.cu13"):
    try:
        m = importlib.import_module(name)
        print("wheel", name + ":", list(m.__path__)[0])
    except Exception as e:
        print("wheel", name + ": not found", e)
PY
fi
nvidia-smi 2>&1 | head -20 || true
echo "toolkit libraries:"; ls "\$(dirname "\$(dirname '$nvcc')")"/lib64 2>/dev/null | grep -E 'cudart|cublas|cudnn|nccl' | head -20
EOF
)
run_step env 20 "$outdir/env.log" "$env_cmd"
cat "$outdir/env.log"

# ---- 2-3. configure and build ---------------------------------------------------------
# RESCNN_IMAGES=OFF: the GPU machine need not have libpng/libjpeg (they are
# not carried), and nothing checked here reads image files.
configure_cmd="cmake -S '$root' -B '$build' ${generator[*]} -DCMAKE_BUILD_TYPE=Release -DRESCNN_CUDA=ON -DRESCNN_IMAGES=OFF \
  -DCMAKE_CUDA_COMPILER='$nvcc' -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH='$deps/prefix' \
  -DZLIB_INCLUDE_DIR='$deps/prefix/include' -DZLIB_LIBRARY='$zlib' ${python:+-DPython3_EXECUTABLE='$python'}"
run_step configure 60 "$outdir/build.log" "$configure_cmd"
build_cmd="cmake --build '$build' -j $jobs --target rescnn_cuda_tests bench_resnet train_fashion_mnist"
run_step build "$build_limit" "$outdir/build.log" "$build_cmd"
grep -h "rescnn: cuDNN" "$outdir/build.log" | tail -1 | sed 's/^-- /cuDNN (build): /' >> "$outdir/env.log"

# For the loader: cuDNN's directory (pip's wheel loads its sub-libraries,
# libcudnn_cnn.so.9 and the rest, from there), the wheels' other libraries
# beside it (cuBLAS and friends, which cuDNN needs) and the toolkit's.
cudnn_lib=$(sed -n 's/^RESCNN_CUDNN_LIBRARY:FILEPATH=//p' "$build/CMakeCache.txt" 2>/dev/null)
libdirs=()
if [[ -n $cudnn_lib ]]; then
  libdirs+=("$(dirname "$cudnn_lib")")
  for d in "$(dirname "$cudnn_lib")"/../../*/lib; do [[ -d $d ]] && libdirs+=("$(cd "$d" && pwd)"); done
fi
libdirs+=("$(dirname "$(dirname "$nvcc")")/lib64")
LD_LIBRARY_PATH=$(IFS=:; echo "${libdirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >> "$outdir/env.log"

# ---- 4-6. on the GPU ---------------------------------------------------------------------
ctest_cmd="cd '$build' && RESCNN_REQUIRE_GPU=1 OMP_NUM_THREADS=$(((jobs + 3) / 4)) ctest -L cuda -j 4 --output-on-failure"
bench=$build/benchmarks/bench_resnet
torch_bench=$root/benchmarks/torch_resnet_bench.py
# One model's rounds: rescnn and PyTorch alternate within each round.
# Each run's lines go through sed to be tagged; pipefail and rc make a run
# that fails fail the step, though the others still run.
bench_cmd="set -o pipefail; rc=0; "
tag() { echo "| sed -u 's/^case=/impl=$1 round=$round case=/' || rc=1"; }
for ((round = 1; round <= rounds; ++round)); do
  for config in "96 20 d2l_resnet18" "224 10 resnet50"; do
    read -r size steps model <<< "$config"
    common="--size $size --batch 128 --steps $steps --device cuda --model $model"
    bench_cmd+="'$bench' $common $(tag rescnn); "
    bench_cmd+="'$python' '$torch_bench' $common $(tag pytorch); "
    bench_cmd+="'$python' '$torch_bench' $common --channels-last $(tag pytorch); "
    bench_cmd+="'$bench' $common --no-tf32 $(tag rescnn); "
    bench_cmd+="'$python' '$torch_bench' $common --no-tf32 $(tag pytorch); "
    ((round == 1)) && [[ $model == d2l_resnet18 ]] && bench_cmd+="'$bench' $common --deterministic $(tag rescnn); "
    if ((round == 1)); then
      for amp in bf16 fp16; do
        bench_cmd+="'$bench' $common --precision $amp $(tag rescnn); "
        bench_cmd+="'$python' '$torch_bench' $common --amp $amp --channels-last $(tag pytorch); "
      done
    fi
  done
done
bench_cmd+="exit \$rc"
train_cmd="'$build/examples/train_fashion_mnist' --device cuda --resize 96 --epochs 2 --lr 0.01 \
  --data '$deps/data/fashion-mnist' --progress none --threads $jobs"

if ((dry_run)); then
  echo "::: dry run: the GPU steps that would run now (the budget left then applies to each):"
  printf '  ctest (limit 100 s): %s\n  bench (limit 160 s): %s\n  train (limit 80 s): %s\n' \
    "$ctest_cmd" "$bench_cmd" "$train_cmd"
  # The report from real output where this machine can make it: the bench
  # line of the bench_resnet just built (on the CPU, tagged as the bench step
  # tags it, its precision relabelled as a GPU run's), beside a PyTorch line
  # in torch_resnet_bench.py's format; so that a change of either output
  # format that the report no longer reads shows here.
  sample=$(mktemp -d)
  cp "$outdir/env.log" "$sample/"
  round=1
  bash -c "set -o pipefail; rc=0; '$bench' --size 96 --batch 2 --steps 1 --cases train $(tag rescnn); exit \$rc" |
    sed 's/precision=fp32/precision=tf32conv/' > "$sample/bench.log" || {
    echo "gpu-check.sh --dry-run: bench_resnet did not run" >&2; exit 1; }
  ours=$(sed -n 's/.*imgs_per_s=\([0-9.]*\).*/\1/p' "$sample/bench.log")
  printf '%s\n' "impl=pytorch round=1 case=resnet18_train batch=2 size=96x96 threads=16 imgs_per_s=$ours peak_rss_mb=1 device=cuda precision=tf32conv layout=channels_last" \
    >> "$sample/bench.log"
  echo "epoch=1 train_loss=0.5 val_loss=0.4 val_acc=0.85 imgs_per_s=1000 seconds=60" > "$sample/train.log"
  echo "100% tests passed, 0 tests failed out of 9" > "$sample/ctest.log"
  "${python:-python3}" "$root/scripts/gpu_report.py" "$sample" "$steps_tsv" "$sample/report.md" || exit 1
  grep -q '| resnet18_train 96x96 | tf32conv | [0-9]* | [0-9]* (tf32conv channels_last) | 1.00 |' "$sample/report.md" || {
    echo "gpu-check.sh --dry-run: the sample report lacks its ratio line:" >&2; cat "$sample/report.md" >&2; exit 1; }
  echo "::: dry run: the report was written from the sample logs"
else
  run_step ctest 100 "$outdir/ctest.log" "$ctest_cmd"
  run_step bench 160 "$outdir/bench.log" "$bench_cmd"
  run_step train 80 "$outdir/train.log" "$train_cmd"
  slug=$(sed -n 's/^gpu: //p' "$outdir/env.log" | cut -d, -f1 | sed 's/^NVIDIA //' | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-')
  report=$outdir/gpu-${slug:-unknown}-$(date -u +%Y-%m-%d).md
  "${python:-python3}" "$root/scripts/gpu_report.py" "$outdir" "$steps_tsv" "$report"
  echo "::: report: $report"
fi

echo "::: steps (total $((SECONDS - start)) s):"
column -t -s $'\t' "$steps_tsv" 2>/dev/null || cat "$steps_tsv"
# Exit status: 0 only when every step that ran passed.
if grep -qv $'\tok\t' "$steps_tsv"; then exit 1; fi
exit 0
