#!/usr/bin/env python3
"""Checks rescnn's ONNX exports (written by write_onnx_cases DIR).

  check_onnx.py checker DIR   onnx.checker (full check, with shape inference)
                              accepts every file; the graph has opset 13, a
                              dynamic batch dimension, and initializers named
                              exactly as the model's state dict
  check_onnx.py opencv DIR    OpenCV's DNN module runs every file at batch 1
                              and 3 and gives rescnn's logits to 1e-4

A runtime that is not installed is reported with RESCNN-SKIPPED (ctest's
skip marker) and exit status 0, never as a pass; with
RESCNN_REQUIRE_ONNX_RUNTIMES=1 (as CI sets it) it is a failure instead.
"""
import json
import os
import sys

TOLERANCE = 1e-4  # absolute, on logits (the bound)


def skip(reason):
    if os.environ.get("RESCNN_REQUIRE_ONNX_RUNTIMES") == "1":
        sys.exit(f"RESCNN_REQUIRE_ONNX_RUNTIMES=1, but {reason}")
    print(f"RESCNN-SKIPPED: {reason}")
    sys.exit(0)


def load_cases(directory):
    with open(os.path.join(directory, "cases.json")) as f:
        return json.load(f)


def floats(directory, name, shape):
    import numpy as np
    data = np.fromfile(os.path.join(directory, name), dtype="<f4")
    return data.reshape(shape)


def check_files(directory):
    try:
        import onnx
    except ImportError:
        skip("the Python module onnx is not installed (Debian: python3-onnx)")
    for case in load_cases(directory):
        path = os.path.join(directory, case["onnx"])
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        opsets = {o.domain: o.version for o in model.opset_import}
        assert opsets.get("", 0) >= 13, f"{path}: opset {opsets}"
        graph = model.graph
        batch = graph.input[0].type.tensor_type.shape.dim[0]
        assert batch.dim_param, f"{path}: the batch dimension is not dynamic: {batch}"
        out_batch = graph.output[0].type.tensor_type.shape.dim[0]
        assert out_batch.dim_param == batch.dim_param, f"{path}: output batch {out_batch}"
        names = sorted(t.name for t in graph.initializer)
        expected = sorted(case["initializers"])
        assert names == expected, (f"{path}: initializers differ from the state dict: "
                                   f"missing {sorted(set(expected) - set(names))[:5]}, "
                                   f"extra {sorted(set(names) - set(expected))[:5]}")
        print(f"{case['name']}: onnx.checker accepts {len(graph.node)} nodes, {len(names)} initializers")


def run_opencv(directory):
    try:
        import cv2
        import numpy as np
    except ImportError:
        skip("the Python module cv2 is not installed (Debian: python3-opencv)")
    worst = 0.0
    for case in load_cases(directory):
        net = cv2.dnn.readNetFromONNX(os.path.join(directory, case["onnx"]))
        for run in case["runs"]:
            x = floats(directory, run["input"], run["input_shape"])
            expected = floats(directory, run["logits"], run["logits_shape"])
            net.setInput(x)
            actual = net.forward()
            assert actual.shape == expected.shape, f"{case['name']}: shape {actual.shape} vs {expected.shape}"
            diff = float(np.max(np.abs(actual - expected)))
            worst = max(worst, diff)
            print(f"{case['name']} batch {run['batch']}: OpenCV {cv2.__version__} max |diff| {diff:.3g}"
                  f" (logits up to {float(np.max(np.abs(expected))):.3g})")
            assert diff <= TOLERANCE, f"{case['name']} batch {run['batch']}: {diff} > {TOLERANCE}"
    print(f"OpenCV agrees with rescnn to {worst:.3g} (tolerance {TOLERANCE})")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("checker", "opencv"):
        sys.exit(__doc__)
    (check_files if sys.argv[1] == "checker" else run_opencv)(sys.argv[2])
