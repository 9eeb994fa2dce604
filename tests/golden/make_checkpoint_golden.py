#!/usr/bin/env python3
"""Export PyTorch state dicts as safetensors, for rescnn's loading test.

Run with Debian's Python (it has PyTorch):

    /usr/bin/python3 tests/golden/make_checkpoint_golden.py [--out DIR]

Writes into ``tests/golden/fixtures`` (or DIR):

* ``export__d2l_tiny.safetensors``  the ``state_dict()`` of a small d2l ResNet
  (arch ((1, 64), (1, 32), (2, 16)), 1 input channel, 10 classes), written
  exactly as ``safetensors.torch.save_file(model.state_dict(), path)`` does:
  every entry of the state dict, ``num_batches_tracked`` included (int64
  scalars), metadata ``{"format": "pt"}``. The model was trained for three
  SGD steps first, so weights, running statistics and counters are not the
  initial ones.
* ``export__d2l_tiny_expected.safetensors``  an input batch and the model's
  outputs on it: ``eval`` (eval mode) and ``train`` (train mode, from the
  exported state; it also updates the running statistics, stored as
  ``train.<name>``).

The ``safetensors`` package is not needed (Debian has none): the writer is
make_golden.py's, and the self-check reads every file back.
"""

import copy
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_golden import self_check, setup, write_file  # noqa: E402
from make_model_golden import d2l_resnet  # noqa: E402

ARCH = ((1, 64), (1, 32), (2, 16))


class Written:
    """The record self_check() reads back: path -> (arrays, metadata)."""

    def __init__(self):
        self.written = {}

    def write(self, path, tensors, metadata):
        from make_golden import to_numpy

        arrays = {k: to_numpy(v) for k, v in tensors.items()}
        write_file(path, arrays, metadata)
        self.written[path] = (arrays, metadata)


def main():
    args = setup(__doc__.splitlines()[0])
    torch.manual_seed(20261122)
    model = d2l_resnet(ARCH, in_channels=1, num_classes=10)

    # A few training steps so that nothing is at its initial value.
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(3):
        x = torch.rand(16, 1, 28, 28)
        y = torch.randint(0, 10, (16,))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    w = Written()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert any(k.endswith("num_batches_tracked") for k in state)
    export_path = os.path.join(args.out, "export__d2l_tiny.safetensors")
    w.write(export_path, state, {"format": "pt"})

    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(7))
    model.eval()
    with torch.no_grad():
        eval_out = model(x)
    train_model = copy.deepcopy(model).train()
    with torch.no_grad():
        train_out = train_model(x)
    expected = {"input": x, "eval": eval_out, "train": train_out}
    for k, v in train_model.state_dict().items():
        if "running_" in k:
            expected["train." + k] = v
    w.write(
        os.path.join(args.out, "export__d2l_tiny_expected.safetensors"),
        expected,
        {"generator": "tests/golden/make_checkpoint_golden.py", "torch_version": torch.__version__,
         "arch": ";".join(f"{n},{c}" for n, c in ARCH)},
    )
    total = self_check(w)
    print(f"wrote {len(w.written)} files, {total} bytes, to {args.out}; self-check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
