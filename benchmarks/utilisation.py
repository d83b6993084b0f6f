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
    dev = torch.device(device)
    variants = {"defaults": {}, "no_dropout_no_clip": {"dropout": 0.0, "grad_clip": 0.0}}
    widths = [features] + [width] * depth + [1]
    flops = step_flops(batch, widths)
    x = torch.randn(batch, features, device=dev)
    x_cat = torch.zeros((batch, 0), dtype=torch.long, device=dev)
    y = (torch.rand(batch, device=dev) > 0.5).long()
    objective = Objective("binary")
    out = {"device": device, "batch": batch, "hidden": [width] * depth, "features": features,
           "flops_per_step": flops, "variants": {}}
    # Reference: a dense matmul of the layer shape, in the dtype the step computes in.
    params = mlp_params(hidden_sizes=[width] * depth)
    autocast = autocast_for(dev, {**params, "device": device})
    dtype = torch.bfloat16 if isinstance(autocast, torch.autocast) else torch.float32
    a = torch.randn(batch, width, device=dev, dtype=dtype)
    b = torch.randn(width, width, device=dev, dtype=dtype)
    matmul_s = _timed(lambda: a @ b, device, seconds / 2)
    matmul_flops = 2 * batch * width * width / matmul_s
    out["dtype"] = str(dtype).replace("torch.", "")
    out["matmul_gflops"] = round(matmul_flops / 1e9, 1)
    for name, overrides in variants.items():
        params = mlp_params(hidden_sizes=[width] * depth, **overrides)
        model = build_mlp(features, params, device)
        model.train()
        optimizer = make_optimizer(model, params)
        autocast = autocast_for(dev, {**params, "device": device})
        step_s = _timed(lambda m=model, o=optimizer, p=params, a=autocast: train_step(m, x, x_cat, y, objective, o, p, a),
                        device, seconds / len(variants))
        achieved = flops / step_s
        out["variants"][name] = {"step_ms": round(step_s * 1e3, 2), "gflops": round(achieved / 1e9, 1),
                                 "utilisation": round(achieved / matmul_flops, 3)}
    out["utilisation"] = out["variants"]["defaults"]["utilisation"]
    return out
