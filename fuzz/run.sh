#!/usr/bin/env bash
# Builds the libFuzzer harnesses (IDX, gzipped IDX, safetensors, PNG/JPEG)
# with clang (AddressSanitizer + UBSan + LeakSanitizer) and runs each for a bounded time from the committed seed
# corpus, two at a time (JOBS). Prints one summary line per harness; exits
# non-zero on any finding.
#
#   bash fuzz/run.sh [seconds per harness, default 60]
#
# Limits: an input may take at most 10 s (-timeout) and the process at most
# 2 GiB (-rss_limit_mb); a single allocation of more than 256 MiB
# (-malloc_limit_mb) is a finding too, since no valid input of these sizes
# needs one: a header field must never drive an absurd allocation. New
# inputs the fuzzer finds go to a scratch directory, not to the committed
# corpus; a crashing input is written to build-fuzz/ as crash-*.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
cxx=${FUZZ_CXX:-clang++}
out=build-fuzz
mkdir -p "$out"
command -v "$cxx" >/dev/null || { echo "fuzz/run.sh: $cxx not found (apt-get install clang)" >&2; exit 2; }

flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I include -I /usr/include/eigen3 -Wno-unknown-pragmas)
declare -A corpus=([fuzz_idx]=idx [fuzz_idx_gzip]=idx [fuzz_safetensors]=safetensors [fuzz_image]=image)

harnesses=(fuzz_idx fuzz_idx_gzip fuzz_safetensors fuzz_image)
# Two at a time (JOBS): the harnesses build and run on one core each.
jobs=${JOBS:-2}
throttle() { while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done; }

# Each build leaves HARNESS.built on success; throttle's wait cannot keep
# the exit statuses, and an old binary must never be fuzzed in a new one's place.
for harness in "${harnesses[@]}"; do
  rm -f "$out/$harness" "$out/$harness.built"
  throttle
  { "$cxx" "${flags[@]}" "fuzz/$harness.cpp" -o "$out/$harness" -lz -lpng -ljpeg && touch "$out/$harness.built"; } &
done
wait
for harness in "${harnesses[@]}"; do
  [[ -f $out/$harness.built ]] || { echo "fuzz/run.sh: $harness does not build" >&2; exit 2; }
done

# fuzz_one HARNESS: runs it, prints its summary line, leaves "clean" or
# "FAILED" in $out/HARNESS.result.
fuzz_one() {
  local harness=$1 work log result runs cov
  work=$(mktemp -d)
  log="$out/$harness.log"
  if (cd "$out" && "./$harness" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 \
        -print_final_stats=1 "$work" "../fuzz/corpus/${corpus[$harness]}" >"$harness.log" 2>&1); then
    result=clean
  else
    result=FAILED
  fi
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
  echo "fuzz: $harness ${seconds}s: ${runs:-?} executions, coverage ${cov:-?} edges, corpus $(ls "$work" | wc -l) new inputs: $result"
  if [[ $result == FAILED ]]; then
    grep -E "ERROR|SUMMARY|runtime error|Test unit written|==[0-9]+==" "$log" | head -20 >&2 || true
  fi
  echo "$result" > "$out/$harness.result"
  rm -rf "$work"
}

for harness in "${harnesses[@]}"; do
  rm -f "$out/$harness.result"
  throttle
  fuzz_one "$harness" &
done
wait
status=0
for harness in "${harnesses[@]}"; do
  [[ $(cat "$out/$harness.result" 2>/dev/null) == clean ]] || status=1
done
exit $status
