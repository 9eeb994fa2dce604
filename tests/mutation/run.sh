#!/usr/bin/env bash
# The mutation check: plants known bugs in the library, one at a time, and
# reports whether the test suite catches each.
#
#   bash tests/mutation/run.sh [--build-dir DIR] [--list] [PATTERN...]
#
# Each tests/mutation/patches/NN-name.patch is a small patch to one file of
# include/ with a header naming what it breaks and the test programs that
# must catch it:
#
#   # the GEMM's store overwrites C where it must add to it
#   # test: test_gemm
#   # test: test_checkpoint [checkpoint]~[crash]     (a Catch test spec may follow)
#   # requires: avx2                                   (optional: a CPU flag the code needs)
#   diff --git a/include/...
#
# For each patch the script applies it to the working tree, rebuilds only the
# named test programs in DIR (default: build, configured as the README says),
# runs them, and restores the file; a patch is caught when any of its tests
# fails. First the same programs are built and run without any patch: they
# must pass, or a "caught" would mean nothing. A patch that no longer applies
# or no longer compiles is an error, not a catch (the list must not rot).
#
# The files a patch touches must have no uncommitted changes (the script
# refuses to start otherwise) and are restored from git on any exit, so no
# work of yours is lost. PATTERN... runs only the patches whose file names
# contain one of them. Exit status: 0 when every patch was caught.
#
# A newly found gap in the tests is added here as a patch first (it must
# survive), then the test that catches it is written.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
root=$PWD
build=build
list_only=0
patterns=()
while (($#)); do
  case "$1" in
    --build-dir) build=${2:?--build-dir needs a directory}; shift ;;
    --list) list_only=1 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    *) patterns+=("$1") ;;
  esac
  shift
done

tests_of() { sed -n 's/^# test: //p' "$1"; }      # "target [spec]" lines
# "# requires: avx512f": the patched code runs only on such a CPU (the
# level it belongs to is chosen at run time); elsewhere the patch is skipped.
unmet_requirement() {
  local need
  for need in $(sed -n 's/^# requires: //p' "$1"); do
    grep -qw "$need" /proc/cpuinfo 2>/dev/null || { echo "$need"; return 0; }
  done
  return 1
}
file_of() { sed -n 's|^+++ b/||p' "$1" | head -1; }
why_of() { head -1 "$1" | sed 's/^# //'; }

patches=()
for p in tests/mutation/patches/*.patch; do
  name=$(basename "$p" .patch)
  if need=$(unmet_requirement "$p"); then
    echo "run.sh: skipping $name: this CPU lacks $need" >&2
    continue
  fi
  if ((${#patterns[@]})); then
    keep=0
    for pat in "${patterns[@]}"; do [[ $name == *"$pat"* ]] && keep=1; done
    ((keep)) || continue
  fi
  patches+=("$p")
done
((${#patches[@]})) || { echo "run.sh: no patch matches ${patterns[*]:-}" >&2; exit 2; }


if ((list_only)); then
  for p in "${patches[@]}"; do
    printf '%-36s %-40s %s\n' "$(basename "$p" .patch)" "$(file_of "$p")" "$(tests_of "$p" | cut -d' ' -f1 | tr '\n' ' ')"
    printf '    %s\n' "$(why_of "$p")"
  done
  exit 0
fi

[[ -f $build/CMakeCache.txt ]] || { echo "run.sh: $build is not a configured build directory (cmake -S . -B $build)" >&2; exit 2; }
for p in "${patches[@]}"; do
  f=$(file_of "$p")
  [[ -n $f && -n $(tests_of "$p") ]] || { echo "run.sh: $p names no file or no test" >&2; exit 2; }
  git diff --quiet HEAD -- "$f" || {
    echo "run.sh: $f has uncommitted changes; commit or stash them first (this script patches it temporarily)" >&2
    exit 2
  }
done

logdir=$build/mutation
rm -rf "$logdir/unpatched"  # never put back programs of an earlier run
mkdir -p "$logdir/unpatched"

applied=""  # the file currently patched, restored on any exit
restore() { if [[ -n $applied ]]; then git checkout -q HEAD -- "$applied"; fi; applied=""; }
# On exit the test programs in DIR are put back as they were built unpatched
# (a later ctest must not run a mutant); their objects are older than the
# restored sources, so the next build redoes them anyway.
restore_programs() {
  local bin
  for bin in "$logdir"/unpatched/*; do [[ -e $bin ]] && cp -p "$bin" "$build/tests/"; done
}
trap 'restore; restore_programs' EXIT
trap 'exit 130' INT TERM
jobs=${JOBS:-2}

# run_tests PATCH LOG: runs every test line of PATCH; 0 when all pass.
run_tests() {
  local line target spec status=0
  while IFS= read -r line; do
    target=${line%% *}
    spec=""
    [[ $line == *" "* ]] && spec=${line#* }
    echo "--- $target ${spec}" >> "$2"
    # --warn NoTests: a spec that matches nothing fails (in the baseline).
    if [[ -n $spec ]]; then
      timeout 600 "$build/tests/$target" --warn NoTests "$spec" >> "$2" 2>&1 || status=1
    else
      timeout 600 "$build/tests/$target" --warn NoTests >> "$2" 2>&1 || status=1
    fi
  done < <(tests_of "$1")
  return $status
}

targets_of() { tests_of "$1" | cut -d' ' -f1 | sort -u; }

# ---- baseline: the same programs, unpatched, must build and pass ------------------
all_targets=$(for p in "${patches[@]}"; do targets_of "$p"; done | sort -u)
start=$SECONDS
echo "::: baseline: building and running $(echo $all_targets | wc -w) test programs unpatched"
# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" --target $all_targets > "$logdir/baseline.log" 2>&1 ||
  { echo "run.sh: the unpatched tests do not build (see $logdir/baseline.log)" >&2; exit 1; }
for target in $all_targets; do
  # The baseline runs exactly what the patches run.
  specs=$(for p in "${patches[@]}"; do tests_of "$p"; done | awk -v t="$target" '$1 == t' | sort -u)
  while IFS= read -r line; do
    tmp=$(mktemp)
    printf '# test: %s\n' "$line" > "$tmp"
    if ! run_tests "$tmp" "$logdir/baseline.log"; then
      echo "run.sh: '$line' fails without any patch (see $logdir/baseline.log)" >&2
      rm -f "$tmp"
      exit 1
    fi
    rm -f "$tmp"
  done <<< "$specs"
done
echo "::: baseline passed in $((SECONDS - start)) s"
for target in $all_targets; do cp -p "$build/tests/$target" "$logdir/unpatched/"; done

# ---- one patch at a time -------------------------------------------------------------
caught=0 survived=() broken=()
for p in "${patches[@]}"; do
  name=$(basename "$p" .patch)
  log=$logdir/$name.log
  : > "$log"
  t0=$SECONDS
  f=$(file_of "$p")
  if ! git apply "$p" 2>> "$log"; then
    broken+=("$name (no longer applies to $f)")
    printf '%-9s %-36s does not apply\n' "BROKEN" "$name"
    continue
  fi
  applied=$f
  # shellcheck disable=SC2046
  if ! cmake --build "$build" -j "$jobs" --target $(targets_of "$p") >> "$log" 2>&1; then
    broken+=("$name (does not compile)")
    printf '%-9s %-36s does not compile (see %s)\n' "BROKEN" "$name" "$log"
    restore
    continue
  fi
  if run_tests "$p" "$log"; then
    survived+=("$name: $(why_of "$p")")
    printf '%-9s %-36s %4d s  %s\n' "SURVIVED" "$name" "$((SECONDS - t0))" "$(why_of "$p")"
  else
    caught=$((caught + 1))
    printf '%-9s %-36s %4d s  by %s\n' "caught" "$name" "$((SECONDS - t0))" "$(targets_of "$p" | tr '\n' ' ')"
  fi
  restore
done

echo "::: mutation check: ${#patches[@]} planted bugs, $caught caught, ${#survived[@]} survived," \
     "${#broken[@]} broken, in $((SECONDS - start)) s (logs: $logdir)"
for s in "${survived[@]}"; do echo "    survived: $s"; done
for b in "${broken[@]}"; do echo "    broken:   $b"; done
((${#survived[@]} == 0 && ${#broken[@]} == 0))
