#!/usr/bin/env python3
"""rescnn against PyTorch on the same machine, in the same run.

Runs build/benchmarks/bench_resnet and benchmarks/torch_resnet_bench.py on the
same cases (d2l ResNet-18, batch 128 by default), each case in a process of
its own (so that its peak memory is its own), alternating which of the two
goes first from round to round, for several rounds. A shared, noisy machine
moves both alike within a round, so the per-round ratio rescnn / PyTorch is
the figure to read; the script prints its minimum, median and maximum per
case, with the medians of images/s and peak resident memory.

  /usr/bin/python3 benchmarks/compare_pytorch.py                   # default cases, 5 rounds
  /usr/bin/python3 benchmarks/compare_pytorch.py --rounds 7 --cases train:28,train:96,infer:96
  /usr/bin/python3 benchmarks/compare_pytorch.py --markdown benchmarks/results/cpu.md
  /usr/bin/python3 benchmarks/compare_pytorch.py --torch-env MALLOC_MMAP_THRESHOLD_=4294967296

PyTorch's CPU speed here depends on glibc's malloc: with its defaults every
large tensor is a fresh mmap and page-faults anew (inference at 96x96 ran
at about a quarter of the speed it reaches with
MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296, the
effect PyTorch's tuning guide gets from jemalloc/tcmalloc). --torch-env
passes such settings to the PyTorch runs only, for a comparison against
PyTorch at its best rather than as installed.

--pytorch-best is PyTorch at its best here: the malloc settings above and
channels_last (--torch-env and --torch-arg spelled out). --precision bf16
runs rescnn with --precision bf16 and PyTorch under bf16 autocast
(torch_resnet_bench.py --amp bf16):

  /usr/bin/python3 benchmarks/compare_pytorch.py --precision bf16 --pytorch-best --rounds 3

--isa avx2 runs both at one instruction-set level: rescnn with
RESCNN_MAX_CPU_ISA=avx2, PyTorch with ONEDNN_MAX_CPU_ISA=AVX2 and
ATEN_CPU_CAPABILITY=avx2 (oneDNN's and ATen's own caps), as on a CPU
without AVX-512.

--against-build DIR compares two builds of rescnn instead (DIR's
bench_resnet in PyTorch's place), e.g. a build without -march against one
with -march=native.

Needs PyTorch for the python3 that runs it (Debian's python3-torch: use
/usr/bin/python3) and a Release build of bench_resnet (--build DIR).
"""
import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LINE = re.compile(r"case=(\S+) batch=(\d+) size=(\S+) threads=(\d+) imgs_per_s=([\d.]+) peak_rss_mb=([\d.]+)")


# What caps each program at one level: rescnn's variable, and oneDNN's and
# ATen's (PyTorch's convolutions are oneDNN's, its element-wise code ATen's).
ISA_ENV = {
    "generic": ({"RESCNN_MAX_CPU_ISA": "generic"}, {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}),
    "avx2": ({"RESCNN_MAX_CPU_ISA": "avx2"}, {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}),
    "avx512": ({"RESCNN_MAX_CPU_ISA": "avx512"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "ATEN_CPU_CAPABILITY": "avx512"}),
}


def run_one(cmd, env=None):
    """Runs one benchmark process; returns (imgs_per_s, peak_rss_mb) of its single case line."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    m = LINE.search(out)
    if not m:
        sys.exit(f"compare_pytorch: no result line in the output of {' '.join(cmd)}:\n{out}")
    return float(m.group(5)), float(m.group(6))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build", help="the CMake build directory (default: build)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--cases", default="train:28,train:96,infer:28,infer:96",
                   help="comma-separated mode:size pairs (mode train or infer)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--markdown", help="also write the table as Markdown to this file")
    p.add_argument("--append", action="store_true",
                   help="add the table to the --markdown file as another section instead of replacing the file")
    p.add_argument("--torch-env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment for the PyTorch runs only (repeatable)")
    p.add_argument("--torch-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for torch_resnet_bench.py, e.g. --torch-arg=--channels-last (repeatable)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: rescnn --precision bf16 against PyTorch's bf16 autocast")
    p.add_argument("--pytorch-best", action="store_true",
                   help="PyTorch with the tuned malloc (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) and channels_last")
    p.add_argument("--isa", choices=sorted(ISA_ENV), help="run both programs capped at this instruction-set level")
    p.add_argument("--against-build", metavar="DIR",
                   help="compare against DIR's bench_resnet instead of PyTorch")
    a = p.parse_args()
    if a.pytorch_best:
        a.torch_env += ["MALLOC_MMAP_THRESHOLD_=4294967296", "MALLOC_TRIM_THRESHOLD_=4294967296"]
        a.torch_arg += ["--channels-last"]
    ours_extra = []
    if a.precision != "fp32":
        ours_extra = ["--precision", a.precision]
        if not a.against_build:
            a.torch_arg += ["--amp", a.precision]

    ours_bin = os.path.join(a.build, "benchmarks", "bench_resnet")
    if not os.access(ours_bin, os.X_OK):
        sys.exit(f"compare_pytorch: {ours_bin} not found; build it first "
                 f"(cmake --build {a.build} --target bench_resnet)")
    torch_script = os.path.join(HERE, "torch_resnet_bench.py")
    other = "PyTorch"
    if a.against_build:
        other_bin = os.path.join(a.against_build, "benchmarks", "bench_resnet")
        if not os.access(other_bin, os.X_OK):
            sys.exit(f"compare_pytorch: {other_bin} not found; build it first")
        other = f"rescnn ({a.against_build})"
    ours_env = dict(os.environ)
    torch_env = dict(os.environ)
    if a.isa:
        ours_env.update(ISA_ENV[a.isa][0])
        torch_env.update(ISA_ENV[a.isa][1] if not a.against_build else ISA_ENV[a.isa][0])
    for kv in a.torch_env:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            sys.exit(f"compare_pytorch: --torch-env expects KEY=VALUE, got '{kv}'")
        torch_env[key] = value
    cases = []
    for spec in a.cases.split(","):
        mode, _, size = spec.partition(":")
        if mode not in ("train", "infer") or not size.isdigit():
            sys.exit(f"compare_pytorch: bad case '{spec}' (expected train:SIZE or infer:SIZE)")
        cases.append((mode, int(size)))

    # Timed steps per process: enough for a few seconds of work at each size.
    def steps(mode, size):
        per_image = (size / 28.0) ** 2 * (3 if mode == "train" else 1)
        return max(2, min(20, int(round(24 / per_image))))

    results = {c: {"ours": [], "torch": [], "ratio": [], "ours_rss": [], "torch_rss": []} for c in cases}
    started = time.time()
    for r in range(a.rounds):
        for mode, size in cases:
            common = ["--size", str(size), "--batch", str(a.batch), "--steps", str(steps(mode, size)),
                      "--threads", str(a.threads), "--cases", mode]
            ours_cmd = [ours_bin] + common + ours_extra
            torch_cmd = ([other_bin] + common + ours_extra if a.against_build
                         else [sys.executable, torch_script] + common + a.torch_arg)
            order = [("ours", ours_cmd), ("torch", torch_cmd)]
            if r % 2:
                order.reverse()
            got = {}
            for who, cmd in order:
                got[who] = run_one(cmd, torch_env if who == "torch" else ours_env)
            res = results[(mode, size)]
            res["ours"].append(got["ours"][0])
            res["torch"].append(got["torch"][0])
            res["ours_rss"].append(got["ours"][1])
            res["torch_rss"].append(got["torch"][1])
            res["ratio"].append(got["ours"][0] / got["torch"][0])
            print(f"round {r + 1}/{a.rounds} {mode} {size}x{size}: rescnn {got['ours'][0]:.1f} img/s, "
                  f"{other} {got['torch'][0]:.1f} img/s, ratio {got['ours'][0] / got['torch'][0]:.3f}",
                  flush=True)

    header = (f"| case | rescnn img/s | {other} img/s | ratio min | ratio median | ratio max "
              f"| rescnn peak MiB | {other} peak MiB |")
    rows = [header, "|" + "---|" * 8]
    for (mode, size), res in results.items():
        med = statistics.median
        rows.append(f"| resnet18_{mode} {size}x{size} | {med(res['ours']):.1f} | {med(res['torch']):.1f} "
                    f"| {min(res['ratio']):.3f} | {med(res['ratio']):.3f} | {max(res['ratio']):.3f} "
                    f"| {med(res['ours_rss']):.0f} | {med(res['torch_rss']):.0f} |")
    table = "\n".join(rows)
    print()
    print(table)

    if a.markdown:
        import torch  # only for its version in the report
        elapsed = time.time() - started
        with open(a.markdown, "a" if a.append else "w") as f:
            if not a.append:
                f.write("# rescnn vs PyTorch on the CPU\n\n")
                f.write("Generated by `benchmarks/compare_pytorch.py --markdown`; do not edit by hand.\n")
            if a.against_build:
                f.write(f"\n## rescnn ({a.build}) against rescnn ({a.against_build})" +
                        (f", both at isa={a.isa}" if a.isa else "") + "\n\n")
            else:
                f.write("\n## PyTorch's environment: " + (" ".join(a.torch_env) if a.torch_env else "as installed") +
                        (" " + " ".join(a.torch_arg) if a.torch_arg else "") +
                        (f"; both capped at {a.isa} (" + " ".join(f"{k}={v}" for k, v in ISA_ENV[a.isa][1].items()) +
                         f"; RESCNN_MAX_CPU_ISA={a.isa})" if a.isa else "") + "\n\n")
            f.write("`" + " ".join(["benchmarks/compare_pytorch.py"] + sys.argv[1:]) + "`\n\n")
            f.write(f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
            f.write(f"- Machine: {cpu_name()}, {os.cpu_count()} logical CPUs; threads={a.threads}\n")
            f.write(f"- PyTorch {torch.__version__} (Python {platform.python_version()}), "
                    f"d2l ResNet-18, batch {a.batch}, {a.precision}\n")
            f.write(f"- {a.rounds} rounds, each case in its own process, the order of the two programs "
                    f"alternating between rounds; {elapsed / 60:.1f} minutes in all\n")
            f.write(f"- ratio = rescnn img/s / {other} img/s within one round (higher is better for rescnn); "
                    "peak = peak resident memory of the process running that case alone\n\n")
            f.write(table + "\n")
        print(f"\nwrote {a.markdown}")


if __name__ == "__main__":
    main()
