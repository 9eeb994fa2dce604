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
# For each patch the script copies include/ into a scratch directory,
# applies the patch there, compiles the named test programs against that copy
# with the build's own flags (DIR's flags.make and link.txt: a Unix
# Makefiles build, configured as the README says, default DIR build), runs
# them, and deletes the copy; a patch is caught when any of its tests fails.
# Your working tree and DIR's programs are never touched, and JOBS patches
# (default 2) are built and run at once: each builds one or two programs, so
# one at a time would leave cores idle. First the same programs are built in
# DIR and run without any patch: they must pass, or a "caught" would mean
# nothing. A patch that no longer applies or no longer compiles is an error,
# not a catch (the list must not rot).
#
# PATTERN... runs only the patches whose file names contain one of them.
# Exit status: 0 when every patch was caught.
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
build=$(cd "$build" && pwd)
for p in "${patches[@]}"; do
  f=$(file_of "$p")
  [[ -n $f && -n $(tests_of "$p") ]] || { echo "run.sh: $p names no file or no test" >&2; exit 2; }
  [[ $f == include/* ]] || { echo "run.sh: $p patches $f; patches may touch only include/" >&2; exit 2; }
done
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
[[ -x $compiler ]] || { echo "run.sh: no C++ compiler named in $build/CMakeCache.txt" >&2; exit 2; }
# The source directory as DIR's flags spell it (the include flag rewritten below).
source_dir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")
[[ -n $source_dir && $(cd "$source_dir" 2>/dev/null && pwd -P) == $(pwd -P) ]] || {
  echo "run.sh: $build was configured for the sources in '$source_dir', not this checkout ($root)" >&2
  exit 2
}
shopt -u patsub_replacement 2>/dev/null || true  # bash 5.2: no '&' expansion in ${var//pattern/replacement}
# Each mutant in a process group of its own (job control), so that an
# interrupted run stops its compilers and test programs too.
set -m

logdir=$build/mutation
rm -rf "$logdir"
mkdir -p "$logdir"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/rescnn-mutation.XXXXXX")
# On any exit: stop the mutants still running (their whole process
# groups), then delete their copies.
stop_mutants() {
  local pid
  for pid in $(jobs -p); do kill -- "-$pid" 2> /dev/null; done
  set +m  # no "Done" lines for the jobs just stopped
  wait 2> /dev/null
  rm -rf "$scratch"
}
trap stop_mutants EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
jobs=${JOBS:-2}
# Two test programs share the cores: OpenMP's threads must not spin while
# they wait (only the speed changes, never the results).
export OMP_WAIT_POLICY=passive

# run_tests PATCH LOG BINDIR: runs every test line of PATCH with the
# programs in BINDIR. 0 when all pass, 1 when one fails (or crashes), 2
# when one could not run or ran out of time: that says nothing about the
# patch, so it is never counted as a catch.
run_tests() {
  local line target spec code status=0
  while IFS= read -r line; do
    target=${line%% *}
    spec=""
    [[ $line == *" "* ]] && spec=${line#* }
    echo "--- $target ${spec}" >> "$2"
    [[ -x $3/$target ]] || { echo "run.sh: $3/$target was not built" >> "$2"; return 2; }
    # --warn NoTests: a spec that matches nothing fails (in the baseline).
    # --foreground: timeout stays in the mutant's process group.
    code=0
    if [[ -n $spec ]]; then
      timeout --foreground 600 "$3/$target" --warn NoTests "$spec" >> "$2" 2>&1 || code=$?
    else
      timeout --foreground 600 "$3/$target" --warn NoTests >> "$2" 2>&1 || code=$?
    fi
    case $code in
      0) ;;
      124 | 126 | 127) echo "run.sh: $target exited with $code (timed out or could not run)" >> "$2"; return 2 ;;
      *) status=1 ;;
    esac
  done < <(tests_of "$1")
  return $status
}

targets_of() { tests_of "$1" | cut -d' ' -f1 | sort -u; }

# make_var FILE NAME: a variable of a CMake-generated flags.make.
make_var() { sed -n "s/^$2 = //p" "$1"; }

# build_private TARGET INCLUDE_ROOT OUT LOG: compiles tests/TARGET.cpp as
# DIR builds it, but with INCLUDE_ROOT/include in place of the source tree's
# include/, and links it as DIR links it, into OUT/TARGET.
build_private() {
  local target=$1 include_root=$2 out=$3 log=$4 dir=$build/tests/CMakeFiles/$1.dir
  [[ -f $dir/flags.make && -f $dir/link.txt ]] || {
    echo "run.sh: $dir has no flags.make and link.txt: the mutation check needs a Unix Makefiles build" >> "$log"
    return 1
  }
  local defines includes flags link
  defines=$(make_var "$dir/flags.make" CXX_DEFINES)
  includes=$(make_var "$dir/flags.make" CXX_INCLUDES)
  flags=$(make_var "$dir/flags.make" CXX_FLAGS)
  # Every rewrite must take effect, or the mutant would be built from the
  # unpatched headers, or linked over DIR's own program.
  local rewritten=${includes//"-I$source_dir/include"/"-I$include_root/include"}
  [[ $rewritten != "$includes" ]] || { echo "run.sh: no -I$source_dir/include in $dir/flags.make" >> "$log"; return 1; }
  link=$(<"$dir/link.txt")
  link=${link//"CMakeFiles/$target.dir/$target.cpp.o"/"$out/$target.o"}
  link=${link/" -o $target "/" -o $out/$target "}
  [[ $link == *" $out/$target.o "* && $link == *" -o $out/$target "* ]] ||
    { echo "run.sh: $dir/link.txt is not of the form this script rewrites: $link" >> "$log"; return 1; }
  # The flags are CMake's, already quoted for a shell.
  eval "\"\$compiler\" $defines $rewritten $flags -o \"\$out/\$target.o\" -c \"\$root/tests/\$target.cpp\"" >> "$log" 2>&1 &&
    (cd "$build/tests" && eval "$link") >> "$log" 2>&1
}

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
    printf '# test: %s\n' "$line" > "$scratch/baseline.spec"
    if ! run_tests "$scratch/baseline.spec" "$logdir/baseline.log" "$build/tests"; then
      echo "run.sh: '$line' fails without any patch (see $logdir/baseline.log)" >&2
      exit 1
    fi
  done <<< "$specs"
done
echo "::: baseline passed in $((SECONDS - start)) s"

# ---- the patches, JOBS at a time ---------------------------------------------------------------
# mutant PATCH: builds and runs one mutant in its own scratch directory and
# prints its one result line: caught, SURVIVED or BROKEN.
mutant() {
  local p=$1 name log t0=$SECONDS work target file status=0
  name=$(basename "$p" .patch)
  log=$logdir/$name.log
  work=$scratch/$name
  file=$(file_of "$p")
  mkdir -p "$work"
  cp -r "$root/include" "$work/include"
  # A repository of its own, so git apply never resolves paths against a
  # repository the scratch directory happens to lie in.
  git init -q "$work"
  if ! (cd "$work" && git apply "$root/$p") >> "$log" 2>&1 || cmp -s "$root/$file" "$work/$file"; then
    printf '%-9s %-36s does not apply to %s\n' "BROKEN" "$name" "$file"
    rm -rf "$work"
    return
  fi
  for target in $(targets_of "$p"); do
    if ! build_private "$target" "$work" "$work" "$log"; then
      printf '%-9s %-36s does not compile (see %s)\n' "BROKEN" "$name" "$log"
      rm -rf "$work"
      return
    fi
  done
  run_tests "$p" "$log" "$work" || status=$?
  case $status in
    0) printf '%-9s %-36s %4d s  %s\n' "SURVIVED" "$name" "$((SECONDS - t0))" "$(why_of "$p")" ;;
    1) printf '%-9s %-36s %4d s  by %s\n' "caught" "$name" "$((SECONDS - t0))" "$(targets_of "$p" | tr '\n' ' ')" ;;
    *) printf '%-9s %-36s a test timed out or could not run (see %s)\n' "BROKEN" "$name" "$log" ;;
  esac
  rm -rf "$work"
}

# The control: one program built this script's way from an unpatched copy
# must pass too, or every "caught" could be the build path's fault.
control=$(echo "$all_targets" | head -1)
mkdir -p "$scratch/control"
cp -r "$root/include" "$scratch/control/include"
printf '# test: %s\n' "$control" > "$scratch/control.spec"
if ! build_private "$control" "$scratch/control" "$scratch/control" "$logdir/control.log" ||
  ! run_tests "$scratch/control.spec" "$logdir/control.log" "$scratch/control"; then
  echo "run.sh: $control, built from an unpatched copy of include/ as the mutants are, fails (see $logdir/control.log)" >&2
  exit 1
fi
echo "::: control: $control built from a copy of include/ passes"

results=$scratch/results
: > "$results"
running=0
for p in "${patches[@]}"; do
  if ((running >= jobs)); then
    wait -n
    running=$((running - 1))
  fi
  mutant "$p" | tee -a "$results" &
  running=$((running + 1))
done
wait

# A mutant that left no line (killed) is broken too, by name.
for p in "${patches[@]}"; do
  name=$(basename "$p" .patch)
  grep -q "^[A-Za-z]* *$name " "$results" || printf '%-9s %-36s left no result\n' "BROKEN" "$name" >> "$results"
done
caught=$(grep -c '^caught ' "$results")
mapfile -t survived < <(grep '^SURVIVED ' "$results")
mapfile -t broken < <(grep '^BROKEN ' "$results")
echo "::: mutation check: ${#patches[@]} planted bugs, $caught caught, ${#survived[@]} survived," \
     "${#broken[@]} broken, in $((SECONDS - start)) s (logs: $logdir)"
for s in "${survived[@]}"; do echo "    $s"; done
for b in "${broken[@]}"; do echo "    $b"; done
((caught == ${#patches[@]}))
