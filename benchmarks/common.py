"""Shared pieces: generated data, the tutorial training loop, timing, machine facts."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from workbench.callbacks import Callback, EpochRecord, RunCancelled
from workbench.models.mlp import MLP, MLPParams
from workbench.models.registry import resolve_params
from workbench.tasks import Objective
from workbench.training import Tensors, fit

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict:
    """What the figures were measured on, including how busy the machine was."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_avg_1m": round(os.getloadavg()[0], 2),
            "cuda": torch.cuda.is_available(), "glibc_tunables": os.environ.get("GLIBC_TUNABLES", "")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_in_child(module: str, args: list[str], env: dict[str, str] | None = None) -> dict:
    """`python -m MODULE ARGS --child` in a fresh process (its own peak RSS and caches); its last line is JSON."""
    env = dict(env or os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-m", module, *args, "--child"], env=env, cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"{module} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_process_main(option: str, default: int, child: Callable[[int], dict], measure: Callable[[int], dict]) -> None:
    """`python -m benchmarks.X [--OPTION N]` measures in a fresh child process (`measure`); `--child` is that child."""
    parser = argparse.ArgumentParser()
    parser.add_argument(f"--{option}", type=int, default=default)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = getattr(args, option)
    print(json.dumps(child(size) if args.child else measure(size)))


def _proc_mb(field: str, path: str = "/proc/self/status") -> float | None:
    """A memory line (in kB) of one of this process's /proc files (Linux) in MB, or None elsewhere."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: VmHWM, since ru_maxrss survives fork + exec and a child started
    by a bigger parent would report the parent's peak."""
    peak = _proc_mb("VmHWM")
    return peak if peak is not None else round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb() -> float:
    """This process's resident memory now."""
    now = _proc_mb("VmRSS")
    return now if now is not None else peak_rss_mb()


def huge_pages_mb() -> float | None:
    """Anonymous memory of this process on transparent huge pages (Linux), e.g. the heap (workbench/hugepages.py)."""
    return _proc_mb("AnonHugePages", "/proc/self/smaps_rollup")


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    task: str

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_outputs(self) -> int:
        """One per class (class codes 0..k-1) for multiclass, else one."""
        if self.task != "multiclass":
            return 1
        return int(max(self.y_train.max(), self.y_val.max())) + 1


def make_data(rows: int, features: int = 50, task: str = "binary", seed: int = 0) -> Split:
    """`rows` training rows (and rows/10 validation rows) of a learnable, noisy non-linear task."""
    rng = np.random.default_rng(seed)
    n_val = max(rows // 10, 200)
    x = rng.normal(size=(rows + n_val, features)).astype("float32")
    w1 = rng.normal(size=(features, 16)) / np.sqrt(features)
    w2 = rng.normal(size=16)
    signal = np.tanh(x @ w1 * 2.0) @ w2 + 0.5 * x[:, 0] * x[:, 1] + 0.3 * np.sin(2 * x[:, 2])
    signal = (signal - signal.mean()) / signal.std()
    noisy = signal + rng.normal(scale=0.35, size=len(signal))
    y = (noisy > 0).astype("int64") if task == "binary" else noisy.astype("float32")
    return Split(x[:rows], y[:rows], x[rows:], y[rows:], task)


# The network the tutorials write: the workbench MLP's layers (256-256 ReLU) with nothing before them or between them.
# Also what the utilisation part counts the FLOPs of.
PLAIN_MLP = {"numeric_embeddings": "none", "dropout": 0.0, "front_scale": False, "activation": "relu"}


def mlp_params(**overrides) -> MLPParams:
    """The workbench MLP's hyperparameters: its defaults unless overridden."""
    return resolve_params("mlp", overrides)


def build_mlp(n_features: int, params: MLPParams, device: str, seed: int = 0, n_outputs: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return MLP(n_features, [], n_outputs, params).to(device)


def objective_for(data: Split) -> Objective:
    return Objective.for_training(data.task, data.y_train)


# -- the tutorial loop ---------------------------------------------------------------------------


class Tutorial:
    """A PyTorch training loop as the tutorials write it: DataLoader(TensorDataset(...), shuffle=True), Adam,
    zero_grad / forward / loss / backward / step per batch, `loss.item()` summed for the epoch's log line.
    Multiclass: the model has one output per class and learns by cross-entropy on class codes 0..k-1."""

    def __init__(self, data: Split, model: nn.Module, batch_size: int, lr: float, device: str):
        self.data, self.model, self.device = data, model, device
        y = torch.as_tensor(data.y_train)
        y = y.long() if data.task == "multiclass" else y.float()
        self.loader = DataLoader(TensorDataset(torch.as_tensor(data.x_train), y), batch_size=batch_size, shuffle=True)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.loss_fn = {"binary": nn.BCEWithLogitsLoss(), "multiclass": nn.CrossEntropyLoss()}.get(data.task, nn.MSELoss())
        self.y_mean = float(data.y_train.mean()) if data.task == "regression" else 0.0
        self.y_std = float(data.y_train.std() or 1.0) if data.task == "regression" else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x, torch.zeros((x.shape[0], 0), dtype=torch.long, device=x.device))
        return out if self.data.task == "multiclass" else out.squeeze(1)

    def epoch(self) -> float:
        self.model.train()
        running = 0.0
        for xb, yb in self.loader:
            xb, yb = xb.to(self.device), yb.to(self.device)
            if self.data.task == "regression":
                yb = (yb - self.y_mean) / self.y_std
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.forward(xb), yb)
            loss.backward()
            self.optimizer.step()
            running += loss.item()
        return running / len(self.loader)

    def validate(self) -> float:
        """Accuracy (binary, multiclass) or rmse (regression) on the validation rows."""
        self.model.eval()
        with torch.no_grad():
            out = self.forward(torch.as_tensor(self.data.x_val).to(self.device)).cpu().numpy()
        if self.data.task == "binary":
            return float(((out > 0).astype("int64") == self.data.y_val).mean())
        if self.data.task == "multiclass":
            return float((out.argmax(1) == self.data.y_val).mean())
        return float(np.sqrt(np.mean((out * self.y_std + self.y_mean - self.data.y_val) ** 2)))


def better(a: float, b: float, task: str) -> bool:
    return a > b if task != "regression" else a < b


def reached(score: float, target: float, task: str) -> bool:
    return score >= target if task != "regression" else score <= target


def until_plateau(train_epoch: Callable[[], float], task: str, patience: int, max_epochs: int) -> dict:
    """Epochs of `train_epoch` (one epoch, returns the validation score) until `patience` epochs bring no better
    score: the best score, when it was reached, and every epoch's (number, seconds, score)."""
    started = time.perf_counter()
    best, best_at, best_epoch, epochs, bad = None, 0.0, 0, [], 0
    for epoch in range(1, max_epochs + 1):
        score = train_epoch()
        elapsed = time.perf_counter() - started
        epochs.append([epoch, round(elapsed, 2), round(score, 5)])
        if best is None or better(score, best, task):
            best, best_at, best_epoch, bad = score, elapsed, epoch, 0
        else:
            bad += 1
            if bad >= patience:
                break
    return {"best_score": best, "best_epoch": best_epoch, "seconds_to_best": round(best_at, 2),
            "seconds_total": round(time.perf_counter() - started, 2), "epochs": epochs}


# -- our trainer ---------------------------------------------------------------------------------


class StopAtScore(Callback):
    """Ends a run (as a cancel) the epoch its validation score reaches `target`; records when each epoch ended."""

    def __init__(self, target: float | None, task: str, started: float, time_limit_s: float | None = None):
        self.target, self.task, self.started, self.time_limit_s = target, task, started, time_limit_s
        self.epochs: list[tuple[int, float, float]] = []  # (epoch, seconds since start, val score)
        self.reached_at: float | None = None

    def on_epoch_end(self, record: EpochRecord) -> None:
        elapsed = time.perf_counter() - self.started
        self.epochs.append((record.epoch, elapsed, record.val_metric))
        if self.target is not None and reached(record.val_metric, self.target, self.task):
            self.reached_at = elapsed
            raise RunCancelled("target reached")
        if self.time_limit_s is not None and elapsed > self.time_limit_s:
            raise RunCancelled("time limit")


def ours(data: Split, params: MLPParams, device: str, callbacks: list[Callback] = (),
         compile_model: bool = False) -> tuple[nn.Module, object, float]:
    """Our trainer, the real path: tensors made once on the device, then `workbench.training.fit`.
    Returns (model, FitResult, seconds including the move to the device)."""
    params = replace(params, device=device)
    started = time.perf_counter()
    dev = torch.device(device)
    train = Tensors.from_arrays(data.x_train, np.zeros((len(data.x_train), 0)), data.y_train, dev)
    val = Tensors.from_arrays(data.x_val, np.zeros((len(data.x_val), 0)), data.y_val, dev)
    model = build_mlp(data.n_features, params.for_rows(len(data.x_train)), device, params.seed)
    if compile_model:
        model = torch.compile(model)
    result = fit(model, train, val, objective_for(data), params, callbacks)
    sync(device)
    return model, result, time.perf_counter() - started


def best_of(fns: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Each function `repeats` times, interleaved (a, b, a, b, ...) so load spikes hit both; the best time of each."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(fn())
    return {name: min(values) for name, values in times.items()}
