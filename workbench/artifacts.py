"""Save and load a trained run. Safe formats only: loading never unpickles anything.

A run folder holds `config.json` (what the model is, its task and which columns it needs), the fitted column
transformer as skops, and the weights as safetensors (neural), the estimator as skops (classical), or for an
ensemble its members' run folders under `members/` (their weights are in config.json).
skops is loaded with an explicit allow-list of the few types it does not trust by default. A folder whose files
cannot be read, or do not fit together, is refused in one sentence: it is damaged.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import skops.io as sio
import torch
from safetensors.torch import load_file, save_file

from workbench.errors import UserError, storage_error_message
from workbench.models.ensemble import MEMBERS_DIR, Ensemble
from workbench.models.params import saved
from workbench.prepare import Preprocessor

FORMAT_VERSION = 1
# The only types outside skops' default trust list that our transformers and estimators contain.
ALLOWED_SKOPS_TYPES = {
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
    "workbench.prepare.RobustSmoothClip",
}


def save_run(run_dir: Path, config: dict[str, Any], preprocessor: Preprocessor, model: Any) -> None:
    """Write into a temporary folder beside the target, then rename: never a half-written model."""
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}-"))
    try:
        config = {**config, "format_version": FORMAT_VERSION, **preprocessor.to_config()}
        if isinstance(model, Ensemble):
            config["members"] = model.to_config()
        (tmp / "config.json").write_text(json.dumps(config, indent=2, default=str))
        sio.dump(preprocessor.transformer_, tmp / "preprocessor.skops")
        if isinstance(model, torch.nn.Module):
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            save_file(state, tmp / "weights.safetensors")
        elif isinstance(model, Ensemble):
            # Copies, not links: the ensemble stays whole when a member run is deleted, and exports as one folder.
            for run_id, folder in zip(model.run_ids, model.folders, strict=True):
                shutil.copytree(folder, tmp / MEMBERS_DIR / run_id)
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
    """Returns the config, the fitted preprocessor and the model (an nn.Module on the CPU, an estimator, or an
    Ensemble, whose members workbench.predict.load_model loads).
    A damaged folder (a file missing, cut short or overwritten, weights that do not fit the model) raises one
    UserError that says so."""
    from workbench.models.registry import MODELS

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError("This run has no saved model (it did not finish, or its files were removed).")
    reading = "config.json"  # the file named if loading fails
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        reading = "preprocessor.skops"
        transformer = load_skops(run_dir / "preprocessor.skops")
        reading = "config.json"
        spec = MODELS[config["model"]]
        preprocessor = Preprocessor.from_config(config, transformer)
        params = saved(spec.params, config["params"])
        reading = "preprocessor.skops"  # it must make the columns that config.json names
        if [str(name) for name in transformer.get_feature_names_out()] != preprocessor.feature_names_:
            raise ValueError("the preprocessing does not match config.json")
        if spec.family == "ensemble":
            reading = MEMBERS_DIR
            model = Ensemble.from_config(config["members"], run_dir)
            if not model.run_ids or not all((folder / "config.json").is_file() for folder in model.folders):
                raise ValueError("a member's saved model is missing")
        elif spec.family == "neural":
            reading = "weights.safetensors"
            model = spec.build(preprocessor.n_numeric_out_, preprocessor.cardinalities_, int(config["n_outputs"]),
                               params)
            model.load_state_dict(load_file(run_dir / "weights.safetensors"))  # strict: every name and shape
            model.eval()
        else:
            reading = "model.skops"
            model = load_skops(run_dir / "model.skops")
            if model.n_features_in_ != preprocessor.n_numeric_out_:
                raise ValueError("the model does not match the preprocessing")
    except UserError:  # a file with types this app never writes: said as it is
        raise
    except Exception as exc:  # whatever fails in reading files this app wrote: they were changed since
        raise UserError(f"The saved model of run {run_dir.name} is damaged ({reading} cannot be used); "
                        "train it again.") from exc
    return config, preprocessor, model
