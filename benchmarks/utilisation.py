"""3. Achieved FLOP/s of our MLP training step (forward + backward + optimizer) vs a plain dense matmul."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from benchmarks.common import PLAIN_MLP, build_mlp, huge_pages_mb, mlp_params, sync
from workbench.devices import autocast_for
from workbench.tasks import Objective
from workbench.training import make_optimizer, train_step


def _seconds_per_call(fn, device: str, seconds: float) -> float:
    """Seconds per call over a block of repeated calls lasting about `seconds` (at least 3 calls)."""
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    calls = max(3, int(seconds / max(time.perf_counter() - started, 1e-6)))
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    sync(device)
    return (time.perf_counter() - started) / calls


def _best_interleaved(fns: dict[str, Callable[[], object]], device: str, seconds: float, rounds: int = 10) -> dict[str, float]:
    """Best seconds per call of each function, timed in turn, round after round: on a shared machine whose speed
    drifts, each function gets the same spread of fast and slow moments, so their ratios hold."""
    for fn in fns.values():
        for _ in range(3):  # warm up: allocator, caches, oneDNN's kernel choice
            fn()
    best = dict.fromkeys(fns, float("inf"))
    block = seconds / rounds / len(fns)
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], _seconds_per_call(fn, device, block))
    return best


def step_flops(batch: int, widths: list[int]) -> int:
    """Matmul FLOPs one training step performs, per row: 2 per weight forward, 2 for the weight's gradient and 2 for
    the input's gradient, except in the first layer, whose input (the data) needs none."""
    weights = [a * b for a, b in zip(widths[:-1], widths[1:], strict=True)]
    return batch * (6 * sum(weights) - 2 * weights[0])


def measure(device: str = "cpu", batch: int = 4096, width: int = 512, depth: int = 3, features: int = 50,
            seconds: float = 20.0) -> dict:
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
    timed = {}
    for name, overrides in variants.items():
        params = mlp_params(hidden_sizes=[width] * depth, **{**PLAIN_MLP, **overrides})  # the layers step_flops counts
        autocast = autocast_for(dev, params.mixed_precision)
        dtype = torch.bfloat16 if isinstance(autocast, torch.autocast) else torch.float32
        dtype_name = str(dtype).replace("torch.", "")
        if f"matmul {dtype_name}" not in timed:
            a = torch.randn(batch, width, device=dev, dtype=dtype)
            b = torch.randn(width, width, device=dev, dtype=dtype)
            timed[f"matmul {dtype_name}"] = lambda a=a, b=b: a @ b
        model = build_mlp(features, params, device)
        model.train()
        optimizer = make_optimizer(model, params)
        timed[name] = lambda m=model, o=optimizer, p=params, a=autocast: train_step(m, x, x_cat, y, objective, o, p, a)
        out["variants"][name] = {"dtype": dtype_name}
    best = _best_interleaved(timed, device, seconds)
    for name, variant in out["variants"].items():
        matmul_gflops = 2 * batch * width * width / best[f"matmul {variant['dtype']}"] / 1e9
        out["matmul_gflops_by_dtype"][variant["dtype"]] = round(matmul_gflops, 1)
        gflops = flops / best[name] / 1e9
        variant.update(step_ms=round(best[name] * 1e3, 2), gflops=round(gflops, 1),
                       utilisation=round(gflops / matmul_gflops, 3))
    out["dtype"] = out["variants"]["defaults"]["dtype"]
    out["matmul_gflops"] = out["matmul_gflops_by_dtype"][out["dtype"]]
    out["utilisation"] = out["variants"]["defaults"]["utilisation"]
    out["huge_pages_mb"] = huge_pages_mb()
    return out
