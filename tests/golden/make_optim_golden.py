#!/usr/bin/env python3
"""Generate the optimizer and learning-rate-schedule golden fixtures for rescnn.

Run with Debian's Python (it has PyTorch):

    /usr/bin/python3 tests/golden/make_optim_golden.py [--out DIR]

Writes into ``tests/golden/fixtures`` (or DIR):

* ``optim__<case>.safetensors``     six steps of torch.optim.SGD / Adam / AdamW
* ``schedule__<case>.safetensors``  the learning rate (and momentum) a
                                    torch.optim.lr_scheduler gives each update

See the "Optimizer and schedule fixtures" section of tests/golden/README.md.

Optimizer cases store the gradient of every step as well as the parameters
after it: the C++ test feeds the stored gradients instead of recomputing
``sin(3 p + k) + 0.1 k`` from its own parameters, so a one-ulp difference in
``sin`` or in an earlier update cannot feed back into later gradients, and the
comparison judges the optimizer alone. The safetensors writer, reader and
self-check are make_golden.py's (imported).
"""

import os
import sys
import warnings
import zlib

import numpy as np
import torch
from torch.optim import SGD, Adam, AdamW
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, OneCycleLR, SequentialLR, StepLR

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import FixtureWriter, finish, setup  # noqa: E402

GENERATOR = "tests/golden/make_optim_golden.py"
PREFIXES = ("optim__", "schedule__")

# Parameters of every optimizer case: (name, shape). Names as a model would
# give them, so the state names are checked too ("a.weight.exp_avg").
PARAMS = [("a.weight", (3, 4)), ("a.bias", (5,)), ("conv.weight", (2, 1, 3, 3))]
STEPS = 6

# The learning rate and momentum of each step in the cases that change them
# between steps, as a schedule does (momentum: SGD's momentum, Adam's beta1).
SGD_LRS = [0.05, 0.1, 0.02, 0.08, 0.0, 0.03]
SGD_MOMENTA = [0.9, 0.85, 0.95, 0.8, 0.9, 0.7]
ADAM_LRS = [1e-3, 5e-3, 2e-2, 1e-2, 3e-3, 1e-3]
ADAM_BETA1S = [0.95, 0.9, 0.85, 0.9, 0.95, 0.8]

# (case, class, options, per-step lrs, per-step momenta)
OPTIM_CASES = [
    ("sgd_plain", SGD, dict(lr=0.1), None, None),
    ("sgd_momentum_0p9", SGD, dict(lr=0.05, momentum=0.9), None, None),
    ("sgd_momentum_dampening_0p5", SGD, dict(lr=0.05, momentum=0.9, dampening=0.5), None, None),
    ("sgd_nesterov", SGD, dict(lr=0.05, momentum=0.9, nesterov=True), None, None),
    ("sgd_weight_decay_momentum", SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-2), None, None),
    ("sgd_momentum_scheduled", SGD, dict(lr=0.05, momentum=0.9, dampening=0.1), SGD_LRS, SGD_MOMENTA),
    ("adam_default", Adam, dict(), None, None),
    ("adam_weight_decay", Adam, dict(lr=1e-2, weight_decay=1e-2), None, None),
    # beta2 = 0.9 so that exp_avg_sq decreases for some elements within six
    # steps and the maximum really differs from it (asserted below).
    ("adam_amsgrad", Adam, dict(lr=1e-2, betas=(0.9, 0.9), amsgrad=True), None, None),
    ("adam_scheduled", Adam, dict(lr=1e-3, weight_decay=1e-3), ADAM_LRS, ADAM_BETA1S),
    ("adamw_default", AdamW, dict(), None, None),
    ("adamw_wd_0p1_betas_0p8_0p99", AdamW, dict(lr=1e-2, weight_decay=0.1, betas=(0.8, 0.99)), None, None),
    # eps comparable to sqrt(v_hat) (the gradients are about 1): with the
    # default 1e-8 an update that drops eps differs by about 1e-8, below
    # the tests' tolerance, so these cases make eps matter.
    ("adam_eps_0p1", Adam, dict(lr=1e-2, eps=0.1), None, None),
    ("adam_amsgrad_eps_0p5", Adam, dict(lr=1e-2, betas=(0.9, 0.9), eps=0.5, amsgrad=True), None, None),
    ("adamw_eps_0p3", AdamW, dict(lr=1e-2, eps=0.3, weight_decay=0.05), None, None),
]


def gradient(p, k):
    """The gradient written into p.grad before step k (depends on p: feedback)."""
    return torch.sin(p * 3 + k) + 0.1 * k


def seed_for(case):
    return zlib.crc32(case.encode()) & 0x7FFFFFFF


def flag(b):
    return "true" if b else "false"


# ---------------------------------------------------------------------------
# optimizers
# ---------------------------------------------------------------------------


def optimizer_meta(cls, opt):
    g = opt.param_groups[0]
    meta = {"optimizer": cls.__name__, "lr": repr(g["lr"]), "weight_decay": repr(g["weight_decay"])}
    if cls is SGD:
        meta.update(momentum=repr(g["momentum"]), dampening=repr(g["dampening"]), nesterov=flag(g["nesterov"]))
    else:
        meta.update(
            betas=f"{g['betas'][0]!r},{g['betas'][1]!r}", eps=repr(g["eps"]), amsgrad=flag(g["amsgrad"])
        )
    return meta


def optim_cases(w, log):
    for case, cls, options, lrs, momenta in OPTIM_CASES:
        torch.manual_seed(seed_for(f"optim__{case}"))
        params = [torch.randn(*shape).requires_grad_(True) for _, shape in PARAMS]
        names = [n for n, _ in PARAMS]
        tensors = {f"init.{n}": p.detach().clone() for n, p in zip(names, params)}
        opt = cls(params, **options)
        meta = optimizer_meta(cls, opt)  # the options as built, before any schedule
        for k in range(STEPS):
            g0 = opt.param_groups[0]
            if lrs is not None:
                g0["lr"] = lrs[k]
            if momenta is not None:
                if cls is SGD:
                    g0["momentum"] = momenta[k]
                else:
                    g0["betas"] = (momenta[k], g0["betas"][1])
            for n, p in zip(names, params):
                with torch.no_grad():
                    p.grad = gradient(p, k)
                tensors[f"grad.{k}.{n}"] = p.grad.clone()
            opt.step()
            for n, p in zip(names, params):
                tensors[f"param.{k}.{n}"] = p.detach().clone()
        state_names = []
        for n, p in zip(names, params):
            for key, value in opt.state[p].items():
                # "step": rescnn counts steps once per optimizer (steps());
                # SGD without momentum keeps momentum_buffer = None.
                if key == "step" or value is None:
                    continue
                tensors[f"state.{n}.{key}"] = value.clone()
                state_names.append(f"{n}.{key}")
        if case == "adam_amsgrad":
            differ = sum(
                int((opt.state[p]["max_exp_avg_sq"] != opt.state[p]["exp_avg_sq"]).sum()) for p in params
            )
            assert differ > 0, "amsgrad case does not exercise the maximum"
            log(f"optim__{case}: max_exp_avg_sq differs from exp_avg_sq in {differ} elements")
        if lrs is not None:
            tensors["lr"] = np.array(lrs, dtype=np.float64)
        if momenta is not None:
            tensors["momentum"] = np.array(momenta, dtype=np.float64)
        meta.update(
            case=case,
            steps=str(STEPS),
            parameters=",".join(names),
            state=",".join(state_names),
            gradient="sin(3 p + k) + 0.1 k",
        )
        w.write(f"optim__{case}.safetensors", tensors, meta)


# ---------------------------------------------------------------------------
# learning-rate schedules
# ---------------------------------------------------------------------------

BASE_LR = 0.1


def onecycle(opt, **kw):
    args = dict(max_lr=0.1, total_steps=40)
    args.update(kw)
    return OneCycleLR(opt, **args), args


def schedule_cases(w, log):
    # (case, optimizer class, number of values, builder -> (scheduler, metadata))
    def step_lr(opt):
        return StepLR(opt, step_size=7, gamma=0.5), dict(schedule="StepLR", step_size=7, gamma=0.5)

    def cosine(opt):
        return CosineAnnealingLR(opt, T_max=30, eta_min=1e-4), dict(schedule="CosineAnnealingLR", t_max=30, eta_min=1e-4)

    def linear(opt):
        return LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=5), dict(
            schedule="LinearLR", start_factor=0.1, end_factor=1.0, total_iters=5
        )

    def linear_partial(opt):
        return LinearLR(opt, start_factor=0.25, end_factor=0.5, total_iters=8), dict(
            schedule="LinearLR", start_factor=0.25, end_factor=0.5, total_iters=8
        )

    def sequential(opt):
        warm = LinearLR(opt, start_factor=0.1, end_factor=1.0, total_iters=5)
        cos = CosineAnnealingLR(opt, T_max=35, eta_min=1e-4)
        return SequentialLR(opt, [warm, cos], milestones=[5]), dict(
            schedule="SequentialLR", warmup_steps=5, start_factor=0.1, t_max=35, eta_min=1e-4
        )

    def one_cycle(**kw):
        def build(opt):
            s, args = onecycle(opt, **kw)
            meta = dict(schedule="OneCycleLR")
            defaults = dict(
                pct_start=0.3, anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4,
                three_phase=False, cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
            )
            defaults.update(args)
            for k, v in defaults.items():
                meta[k] = flag(v) if isinstance(v, bool) else v
            return s, meta

        return build

    cases = [
        ("step_7_0p5", SGD, 40, step_lr),
        ("cosine_t30_eta_1e-4", SGD, 75, cosine),  # past T_max and past 2 T_max
        ("linear_0p1_to_1_in_5", SGD, 40, linear),
        ("linear_0p25_to_0p5_in_8", SGD, 40, linear_partial),
        ("sequential_linear5_cosine35", SGD, 40, sequential),
        ("onecycle_cos_sgd", SGD, 41, one_cycle()),
        ("onecycle_linear_sgd", SGD, 41, one_cycle(anneal_strategy="linear")),
        ("onecycle_three_phase_sgd", SGD, 41, one_cycle(three_phase=True)),
        ("onecycle_cos_adam", Adam, 41, one_cycle()),
        (
            "onecycle_custom_adam",
            Adam,
            41,
            one_cycle(max_lr=0.05, pct_start=0.25, div_factor=10.0, final_div_factor=100.0,
                      base_momentum=0.8, max_momentum=0.9, anneal_strategy="linear", three_phase=True),
        ),
    ]
    for case, cls, count, build in cases:
        p = torch.zeros(1, requires_grad=True)
        opt = SGD([p], lr=BASE_LR, momentum=0.9) if cls is SGD else Adam([p], lr=BASE_LR)
        sched, meta = build(opt)
        lrs, momenta = [], []

        def momentum():
            g = opt.param_groups[0]
            return g["momentum"] if cls is SGD else g["betas"][0]

        for k in range(count):
            if k > 0:
                opt.step()  # no gradient: nothing changes, but the order is PyTorch's
                sched.step()
            lrs.append(sched.get_last_lr()[0])
            momenta.append(momentum())
        tensors = {"lr": np.array(lrs, dtype=np.float64)}
        if meta["schedule"] == "OneCycleLR":
            tensors["momentum"] = np.array(momenta, dtype=np.float64)
            opt.step()
            try:
                sched.step()
            except ValueError:
                meta["raises_at"] = str(count)
            else:
                raise AssertionError(f"{case}: OneCycleLR did not raise after total_steps")
        meta.update(case=case, base_lr=BASE_LR, optimizer=cls.__name__, count=count)
        meta = {k: (repr(v) if isinstance(v, float) else str(v)) for k, v in meta.items()}
        w.write(f"schedule__{case}.safetensors", tensors, meta)
        log(f"schedule__{case}: lr {lrs[0]:.6g} .. {lrs[-1]:.6g}")


def main():
    args = setup(__doc__.splitlines()[0])
    # SequentialLR restarts its second scheduler with step(0), which PyTorch
    # itself reports as deprecated; the values are what we record.
    warnings.filterwarnings("ignore", message="The epoch parameter in `scheduler.step\\(\\)`")
    log = print
    w = FixtureWriter(args.out, GENERATOR)
    optim_cases(w, log)
    schedule_cases(w, log)

    return finish(w, PREFIXES)


if __name__ == "__main__":
    sys.exit(main())
