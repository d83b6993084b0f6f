"""Save and load a trained run. Safe formats only: loading never unpickles anything.

A run folder holds `config.json` (what the model is and which columns it needs), the fitted column
transformer as skops, and the weights as safetensors (neural) or the estimator as skops (classical).
skops is loaded with an explicit allow-list of the few types it does not trust by default.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import skops.io as sio
import torch
from safetensors.torch import load_file, save_file

from workbench.errors import UserError, storage_error_message
from workbench.prepare import Features, Preprocessor

FORMAT_VERSION = 1
# The only types outside skops' default trust list that our transformers and estimators contain.
ALLOWED_SKOPS_TYPES = {
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
}


def save_run(run_dir: Path, config: dict[str, Any], preprocessor: Preprocessor, model: Any) -> None:
    """Write into a temporary folder beside the target, then rename: never a half-written model."""
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}-"))
    try:
        config = {**config, "format_version": FORMAT_VERSION, "features": asdict(preprocessor.features),
                  "categorical_mode": preprocessor.categorical_mode, "n_numeric_out": preprocessor.n_numeric_out,
                  "cardinalities": preprocessor.cardinalities, "feature_names": preprocessor.feature_names}
        (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str))
        sio.dump(preprocessor.transformer, tmp / "preprocessor.skops")
        if isinstance(model, torch.nn.Module):
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            save_file(state, tmp / "weights.safetensors")
        else:
            sio.dump(model, tmp / "model.skops")
        if run_dir.exists():
            shutil.rmtree(run_dir)
        os.replace(tmp, run_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and (message := storage_error_message(exc)):
            raise UserError(message) from exc
        raise


def load_skops(path: Path) -> Any:
    untrusted = set(sio.get_untrusted_types(file=path))
    unexpected = untrusted - ALLOWED_SKOPS_TYPES
    if unexpected:
        raise UserError(f"The saved file {path.name} contains types this app never writes; it was not loaded.")
    return sio.load(path, trusted=sorted(untrusted))


def load_run(run_dir: Path) -> tuple[dict[str, Any], Preprocessor, Any]:
    """Returns the config, the fitted preprocessor and the model (an nn.Module on the CPU, or an estimator)."""
    from workbench.models.registry import get_model

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError("This run has no saved model (it did not finish, or its files were removed).")
    config = json.loads((run_dir / "config.json").read_text())
    preprocessor = Preprocessor(
        features=Features(**config["features"]), categorical_mode=config["categorical_mode"],
        transformer=load_skops(run_dir / "preprocessor.skops"), n_numeric_out=config["n_numeric_out"],
        cardinalities=config["cardinalities"], feature_names=config["feature_names"],
    )
    spec = get_model(config["model"])
    if spec.family == "neural":
        model = spec.build(config["n_numeric_out"], config["cardinalities"], config["n_outputs"], config["params"])
        model.load_state_dict(load_file(run_dir / "weights.safetensors"))
        model.eval()
    else:
        model = load_skops(run_dir / "model.skops")
    return config, preprocessor, model
