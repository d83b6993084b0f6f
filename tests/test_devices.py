"""The device and precision shown on the Home page say what training will really use."""

from __future__ import annotations

import pytest
import torch

from workbench import devices
from workbench.models.registry import resolve_params


@pytest.mark.parametrize("native_bf16", [True, False])
def test_the_precision_sentence_matches_what_auto_mixed_precision_does_on_a_cpu(monkeypatch, native_bf16):
    monkeypatch.setattr(devices, "best_device", lambda: "cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native_bf16)
    autocast = devices.autocast_for(torch.device("cpu"), resolve_params("mlp", {}).mixed_precision)
    assert isinstance(autocast, torch.autocast) == native_bf16
    assert ("bf16 mixed precision" in devices.describe_precision()) == native_bf16
    assert devices.describe_device().startswith("CPU (")
