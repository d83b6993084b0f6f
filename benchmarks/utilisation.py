"""3. Achieved FLOP/s of our MLP training step (forward + backward + optimizer) vs a plain dense matmul."""

from __future__ import annotations

import time

import torch

from benchmarks.common import build_mlp, mlp_params, sync
from workbench.training import Objective, autocast_for, make_optimizer, train_step


def _timed(fn, device: str, seconds: float) -> float:
    """Seconds per call: warm up, then repeat for about `seconds`; best of three such blocks."""
    for _ in range(3):
        fn()
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    once = max(time.perf_counter() - started, 1e-6)
    calls = max(3, int(seconds / 3 / once))
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        sync(device)
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def step_flops(batch: int, widths: list[int]) -> int:
    """Matmul FLOPs of one training step: 2 (forward) + 4 (backward) multiply-adds per weight per row."""
    return 6 * batch * sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def measure(device: str = "cpu", batch: int = 4096, width: int = 512, depth: int = 3, features: int = 50,
            seconds: float = 6.0) -> dict:
    """Each variant's step against a dense matmul of the layer shape in the dtype that step computes in: bf16 where
    autocast is on (by default on CUDA and on CPUs with native bf16), float32 otherwise."""
    dev = torch.device(device)
    variants = {"defaults": {}, "no_dropout_no_clip": {"dropout": 0.0, "grad_clip": 0.0},
                "float32": {"mixed_precision": "off"}}
    widths = [features] + [width] * depth + [1]
    flops = step_flops(batch, widths)
    x = torch.randn(batch, features, device=dev)
    x_cat = torch.zeros((batch, 0), dtype=torch.long, device=dev)
    y = (torch.rand(batch, device=dev) > 0.5).long()
    objective = Objective("binary")
    out = {"device": device, "batch": batch, "hidden": [width] * depth, "features": features,
           "flops_per_step": flops, "matmul_gflops_by_dtype": {}, "variants": {}}
    for name, overrides in variants.items():
        params = mlp_params(hidden_sizes=[width] * depth, **overrides)
        autocast = autocast_for(dev, {**params, "device": device})
        dtype = torch.bfloat16 if isinstance(autocast, torch.autocast) else torch.float32
        dtype_name = str(dtype).replace("torch.", "")
        if dtype_name not in out["matmul_gflops_by_dtype"]:
            a = torch.randn(batch, width, device=dev, dtype=dtype)
            b = torch.randn(width, width, device=dev, dtype=dtype)
            matmul_s = _timed(lambda a=a, b=b: a @ b, device, seconds / 4)
            out["matmul_gflops_by_dtype"][dtype_name] = round(2 * batch * width * width / matmul_s / 1e9, 1)
        model = build_mlp(features, params, device)
        model.train()
        optimizer = make_optimizer(model, params)
        step_s = _timed(lambda m=model, o=optimizer, p=params, a=autocast: train_step(m, x, x_cat, y, objective, o, p, a),
                        device, seconds / len(variants))
        gflops = flops / step_s / 1e9
        out["variants"][name] = {"dtype": dtype_name, "step_ms": round(step_s * 1e3, 2), "gflops": round(gflops, 1),
                                 "utilisation": round(gflops / out["matmul_gflops_by_dtype"][dtype_name], 3)}
    out["dtype"] = out["variants"]["defaults"]["dtype"]
    out["matmul_gflops"] = out["matmul_gflops_by_dtype"][out["dtype"]]
    out["utilisation"] = out["variants"]["defaults"]["utilisation"]
    return out
