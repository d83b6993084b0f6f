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


def describe_device() -> str:
    device = best_device()
    if device == "cuda":
        return f"GPU: {torch.cuda.get_device_name(0)}"
    if device == "mps":
        return "GPU: Apple silicon (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"
