"""Settings read from the environment: where data lives and the limits we enforce."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import UserError

DEFAULT_HOME = "workbench-data"
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    max_upload_mb: int = 200
    max_rows: int = 5_000_000
    # A running run whose worker has not written a heartbeat for this long is interrupted.
    heartbeat_timeout_s: float = 30.0
    # Local worker processes the app keeps running (members of a repeated run train in parallel).
    workers: int = 1
    # Who trains queued runs: "local" worker processes, or "ray": tasks on the Ray cluster at RAY_ADDRESS.
    executor: str = "local"
    ray_address: str | None = None

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def test_predictions_dir(self) -> Path:
        """Each finished run's test targets and predictions (`<run id>.npz`), for paired comparisons."""
        return self.home / "test-predictions"

    @property
    def monitoring_dir(self) -> Path:
        """Per run (`<run id>/`): its training rows' reference distribution and, only with WORKBENCH_LOG_ROWS=1,
        the rows of its prediction batches (workbench.monitoring)."""
        return self.home / "monitoring"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def get_settings() -> Settings:
    """Read settings now (not at import), so a test or command can set WORKBENCH_HOME first."""
    home = Path(os.environ.get("WORKBENCH_HOME", DEFAULT_HOME)).expanduser().resolve()
    url = os.environ.get("WORKBENCH_DATABASE_URL") or f"sqlite:///{home / 'workbench.db'}"
    return Settings(
        home=home,
        database_url=url,
        max_upload_mb=int(_positive_number("WORKBENCH_MAX_UPLOAD_MB", 200, whole=True)),
        max_rows=int(_positive_number("WORKBENCH_MAX_ROWS", 5_000_000, whole=True)),
        heartbeat_timeout_s=_positive_number("WORKBENCH_HEARTBEAT_TIMEOUT_S", 30, whole=False),
        workers=int(_positive_number("WORKBENCH_WORKERS", default_workers(), whole=True)),
        executor=_executor(),
        ray_address=os.environ.get("RAY_ADDRESS", "").strip() or None,
    )


def _executor() -> str:
    name = os.environ.get("WORKBENCH_EXECUTOR", "").strip().lower() or "local"
    if name not in EXECUTORS:
        raise UserError(f"The environment variable WORKBENCH_EXECUTOR must be local or ray, not '{name}'.")
    return name


def default_workers() -> int:
    """One local worker per two CPU cores, at least one."""
    return max(1, (os.cpu_count() or 1) // 2)


def _positive_number(variable: str, default: float, whole: bool) -> float:
    """The variable's value, or one plain sentence naming it when it is not a positive (whole) number."""
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0 and (not whole or value == int(value))):
        kind = "a whole number" if whole else "a number"
        raise UserError(f"The environment variable {variable} must be {kind} above 0, not '{text}'.")
    return value
