#!/usr/bin/env python3
"""Writes the GPU check's results file from the logs of scripts/gpu-check.sh.

    gpu_report.py LOGDIR STEPS_TSV OUTPUT_MD

LOGDIR holds env.log, build.log, ctest.log, bench.log and train.log (any may
be missing or cut short: a step that failed or ran out of time still leaves
what it printed). STEPS_TSV has one line per step: name, status, seconds,
limit. Standard library only: it runs on the GPU machine and here (the dry run
feeds it a sample).
"""
import os
import re
import statistics
import sys

CASE = re.compile(r"^impl=(\S+) (?:round=(\d+) )?case=(\S+) batch=(\d+) size=(\S+) .*?imgs_per_s=([\d.]+)(.*)$")


def read(logdir, name):
    path = os.path.join(logdir, name)
    if not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def env_value(env, key):
    m = re.search(rf"^{re.escape(key)}: (.*)$", env, re.M)
    return m.group(1).strip() if m else "not reported"


def variant(impl, rest):
    """A readable name of one configuration: precision, layout, determinism."""
    fields = dict(re.findall(r"(\w+)=(\S+)", rest))
    # PyTorch's "amp_bf16" is rescnn's "bf16": one name per precision.
    words = [fields.get("precision", "fp32").removeprefix("amp_")]
    if impl == "pytorch":
        words.append(fields.get("layout", "nchw"))
    if "deterministic" in rest.split():
        words.append("deterministic")
    return " ".join(words)


def bench_table(bench):
    runs = {}  # (case, size, batch) -> {(impl, variant): [imgs/s, ...]}
    for line in bench.splitlines():
        m = CASE.match(line.strip())
        if not m:
            continue
        impl, _, case, batch, size, rate, rest = m.groups()
        runs.setdefault((case, size, batch), {}).setdefault((impl, variant(impl, rest)), []).append(float(rate))
    if not runs:
        return ["No benchmark line was printed (see bench.log)."]
    out = ["| case | implementation | configuration | runs (img/s) | median img/s |", "|---|---|---|---|---|"]
    ratios = []
    for (case, size, batch), configs in sorted(runs.items()):
        for (impl, var), rates in sorted(configs.items()):
            out.append(f"| {case} {size} batch {batch} | {impl} | {var} | "
                       f"{', '.join(f'{r:.0f}' for r in rates)} | {statistics.median(rates):.0f} |")
        med = {k: statistics.median(v) for k, v in configs.items()}
        for prec in ("tf32conv", "fp32", "bf16", "fp16"):
            ours = med.get(("rescnn", prec))
            theirs = {v: r for (i, v), r in med.items() if i == "pytorch" and v.split()[0] == prec}
            if ours and theirs:
                best_var, best = max(theirs.items(), key=lambda kv: kv[1])
                ratios.append(f"| {case} {size} | {prec} | {ours:.0f} | {best:.0f} ({best_var}) | {ours / best:.2f} |")
    if ratios:
        out += ["", "rescnn against PyTorch's best layout at the same precision (medians of the rounds above):", "",
                "| case | precision | rescnn img/s | PyTorch img/s | rescnn / PyTorch |", "|---|---|---|---|---|"]
        out += ratios
    return out


def ctest_summary(ctest):
    lines = [l for l in ctest.splitlines() if re.search(r"tests passed|tests failed|\*\*\*|Failed|Not Run|Skipped", l)]
    return lines[-40:] if lines else ["ctest printed no summary (see ctest.log)."]


def train_summary(train):
    lines = [l for l in train.splitlines() if l.startswith(("epoch=", "test_acc=", "device", "model"))]
    return lines if lines else ["The trainer printed no epoch line (see train.log)."]


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    logdir, steps_tsv, output = sys.argv[1:]
    env = read(logdir, "env.log")
    steps = [l.split("\t") for l in read("", steps_tsv).splitlines() if l.strip()]
    md = [
        f"# GPU check: {env_value(env, 'gpu')}, {env_value(env, 'date')}",
        "",
        "Written by `scripts/gpu-check.sh` (raw logs beside it in the run's output folder).",
        "",
        "| item | version |", "|---|---|",
    ]
    for key in ("gpu", "driver", "nvcc", "host compiler", "cmake", "cuDNN (build)", "cudnn", "nccl", "torch",
                "torchvision", "cpu cores", "git"):
        md.append(f"| {key} | {env_value(env, key)} |")
    md += ["", "## Steps", "", "| step | status | seconds | limit (s) |", "|---|---|---|---|"]
    md += [f"| {' | '.join(s)} |" for s in steps]
    md += ["", "## ctest -L cuda (RESCNN_REQUIRE_GPU=1)", "", "```"] + ctest_summary(read(logdir, "ctest.log")) + ["```"]
    md += ["", "## Throughput: bench_resnet --device cuda and torch_resnet_bench.py, alternating", ""]
    md += bench_table(read(logdir, "bench.log"))
    md += ["", "## Training: d2l configuration (96x96), 2 epochs", "", "```"]
    md += train_summary(read(logdir, "train.log")) + ["```", ""]
    with open(output, "w") as f:
        f.write("\n".join(md))
    print(f"gpu_report.py: wrote {output}")


if __name__ == "__main__":
    main()
