"""Which device training will use, in words, for the Home page and the CLI."""

from __future__ import annotations

import torch


def best_device() -> str:
    """cuda, then mps, then cpu."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def describe_device() -> str:
    device = best_device()
    if device == "cuda":
        return f"GPU: {torch.cuda.get_device_name(0)}"
    if device == "mps":
        return "GPU: Apple silicon (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def describe_precision() -> str:
    """What mixed precision 'auto' does on the best device, in one sentence (it follows training.autocast_for)."""
    device = best_device()
    if device == "cuda" or (device == "cpu" and cpu_has_native_bf16()):
        return "Neural models train in bf16 mixed precision here by default: this device does bf16 in hardware."
    return "Neural models train in float32 here by default: this device has no bf16 in hardware."
