"""Bundled sample datasets from scikit-learn's `load_*` functions (shipped in the package, no network)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from sklearn import datasets as skd

from workbench.errors import UserError


@dataclass(frozen=True)
class Sample:
    name: str
    target: str
    description: str
    loader: Callable


SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in (
        Sample("breast_cancer", "diagnosis", "Tumour measurements; predict malignant or benign (binary).", skd.load_breast_cancer),
        Sample("wine", "cultivar", "Chemical analysis of wines; predict the cultivar (3 classes).", skd.load_wine),
        Sample("iris", "species", "Flower measurements; predict the species (3 classes).", skd.load_iris),
        Sample("digits", "digit", "8x8 images of handwritten digits as 64 pixel columns (10 classes).", skd.load_digits),
        Sample("diabetes", "progression", "Patient measurements; predict disease progression (regression).", skd.load_diabetes),
    )
}


def load_sample(name: str) -> pd.DataFrame:
    """The sample as a table with a named target column (class labels as text where they have names)."""
    sample = SAMPLES.get(name)
    if sample is None:
        raise UserError(f"There is no sample called '{name}'; choose one of {', '.join(SAMPLES)}.")
    bunch = sample.loader(as_frame=True)
    frame = bunch.frame.copy()
    frame = frame.rename(columns={"target": sample.target})
    names = getattr(bunch, "target_names", None)
    if names is not None and len(names) and sample.name != "digits" and isinstance(names[0], str):
        frame[sample.target] = pd.Categorical.from_codes(frame[sample.target].astype(int), names).astype(str)
    return frame
