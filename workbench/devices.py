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
    bf16 = ", bf16 in hardware" if cpu_has_native_bf16() else ""
    return f"CPU ({torch.get_num_threads()} threads{bf16})"
