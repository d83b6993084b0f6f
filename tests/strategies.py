"""Hypothesis strategies for messy tables, as CSV bytes the way real files arrive.

A table is drawn as a recipe (rows, and per column a kind, a missing share, a seed and a few hand-picked odd
cells); numpy fills in the bulk of the cells from the seed. Hypothesis then shrinks a failure to few rows, few
columns and the simplest kinds, which is what a regression example needs, while a few hundred rows stay cheap.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

MISSING_TOKENS = ("", "NA", "n/a", "null", "?", "-", "NaN", "None")
BOOLEAN_PAIRS = (("true", "false"), ("TRUE", "FALSE"), ("True", "False"), ("yes", "no"), ("Y", "N"), ("1", "0"))
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y",
                "%Y%m%d", "%b %d %Y")
ODD_NUMBERS = ("inf", "-inf", "Infinity", "1e308", "-1e308", "1.7976931348623157e308", "1e-300", "5e-324", "-0",
               "0.1e-5", "1e400", "+3", ".5", "5.", "1_000")
HOSTILE_NAMES = (
    "", " ", "\t", "a", "a ", " a", "A", "a_2", "Name", "name", "naïve", "名前", "🙂", "col,with,commas",
    'quote"d', "line\nbreak", "[click here](https://evil.example/login)", "![t](http://evil.example/t.png)",
    "<b>bold</b>", "<script>alert(1)</script>", "\x1b[31mred\x1b[0m", "\x1b]0;title\x07", "=1+2", "+SUM(A1)",
    "-2", "@cmd", "`code`", "**bold**", "id", "customer_id", "target", "prediction", "proba_x", "\u202eevil",
    "\u200b", "nan", "None", "0", "1.5",
)
HOSTILE_VALUES = ("39.3x", "2024-01-02", "=cmd|' /C calc'!A0", "<img src=x>", "\x1b[2J", "[x](http://e.x)", "é",
                  "  padded  ", "1,5", "1.234,5", "1,234.5", "TRUE", "yes", "🙂", "x" * 40)
KINDS = ("float", "int", "mixed", "constant", "missing", "category", "one_class", "unique", "dates", "boolean",
         "text", "numeric_text")


@dataclass
class ColumnRecipe:
    name: str
    kind: str
    missing_share: float
    seed: int
    odd_cells: list[tuple[int, str]]


@dataclass
class TableRecipe:
    columns: list[ColumnRecipe]
    n_rows: int

    def cells(self) -> list[list[str]]:
        """The table as text cells, column by column."""
        return [column_cells(c, self.n_rows) for c in self.columns]


@dataclass
class CsvFile:
    data: bytes
    recipe: TableRecipe
    delimiter: str
    encoding: str
    decimal_comma: bool


def column_cells(recipe: ColumnRecipe, n_rows: int) -> list[str]:
    rng = np.random.default_rng(recipe.seed)
    kind = recipe.kind
    if kind == "float":
        scale = 10.0 ** rng.integers(-8, 12)
        values = [repr(float(v)) for v in rng.normal(size=n_rows) * scale]
    elif kind == "int":
        values = [str(int(v)) for v in rng.integers(-1000, 1000, n_rows)]
    elif kind == "mixed":  # mostly numbers, a few words
        values = [f"{v:.2f}" if rng.random() > 0.04 else str(rng.choice(["abc", "39.3x", "n.a.", "?!"]))
                  for v in rng.normal(50, 20, n_rows)]
    elif kind == "constant":
        values = [str(rng.choice(["same", "1", "0.5", "x"]))] * n_rows
    elif kind == "missing":
        values = [""] * n_rows
    elif kind == "category":
        levels = [str(v) for v in rng.choice(["red", "green", "blue", "Ünïcode", "a b", "NONE", "0"],
                                             size=int(rng.integers(2, 6)), replace=False)]
        values = [str(v) for v in rng.choice(levels, n_rows, p=_shares(rng, len(levels)))]
    elif kind == "one_class":
        values = ["only"] * n_rows
    elif kind == "unique":
        values = [f"ID-{int(v)}" for v in rng.permutation(n_rows * 3)[:n_rows]]
    elif kind == "dates":
        fmt = str(rng.choice(DATE_FORMATS))
        stamps = np.datetime64("2000-01-01") + rng.integers(0, 12_000, n_rows).astype("timedelta64[D]")
        seconds = rng.integers(0, 86_400, n_rows).astype("timedelta64[s]")
        values = [(s + (sec if "%H" in fmt else 0)).astype("datetime64[s]").item().strftime(fmt)
                  for s, sec in zip(stamps, seconds, strict=True)]
    elif kind == "boolean":
        pair = BOOLEAN_PAIRS[int(rng.integers(len(BOOLEAN_PAIRS)))]
        values = [pair[int(b)] for b in rng.random(n_rows) < 0.5]
    elif kind == "text":
        words = ["lorem", "ipsum", "dolor", "sit", "amet", "naïve", "café", "日本", "🙂", "<b>", "[x](y)"]
        values = [" ".join(rng.choice(words, int(rng.integers(1, 9)))) for _ in range(n_rows)]
    else:  # numeric_text: numbers with decimal commas or thousands separators, as written by spreadsheets
        values = [f"{v:,.2f}" if rng.random() < 0.5 else f"{v:.1f}" for v in rng.normal(2000, 900, n_rows)]
    missing = rng.random(n_rows) < recipe.missing_share
    tokens = [MISSING_TOKENS[int(i)] for i in rng.integers(0, len(MISSING_TOKENS), n_rows)]
    values = [t if m else v for v, m, t in zip(values, missing, tokens, strict=True)]
    for row, cell in recipe.odd_cells:
        values[row % n_rows] = cell
    return values


def _shares(rng: np.random.Generator, k: int) -> np.ndarray:
    """Uneven class shares, sometimes very uneven (imbalance)."""
    weights = rng.random(k) ** 3 + 0.01
    return weights / weights.sum()


names = st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(min_size=0, max_size=12))
odd_cell = st.one_of(st.sampled_from(ODD_NUMBERS + HOSTILE_VALUES + MISSING_TOKENS), st.text(max_size=10))


@st.composite
def column_recipes(draw, max_odd: int = 3) -> ColumnRecipe:
    return ColumnRecipe(
        name=draw(names),
        kind=draw(st.sampled_from(KINDS)),
        missing_share=draw(st.sampled_from((0.0, 0.0, 0.05, 0.3, 0.9))),
        seed=draw(st.integers(0, 2**16)),
        odd_cells=draw(st.lists(st.tuples(st.integers(0, 10_000), odd_cell), max_size=max_odd)),
    )


@st.composite
def table_recipes(draw, min_rows: int = 1, max_rows: int = 300, max_columns: int = 6) -> TableRecipe:
    n_rows = draw(st.one_of(st.integers(min_rows, min(max_rows, 30)), st.integers(min_rows, max_rows)))
    columns = draw(st.lists(column_recipes(), min_size=1, max_size=max_columns))
    return TableRecipe(columns, n_rows)


def to_csv_bytes(recipe: TableRecipe, delimiter: str = ",", encoding: str = "utf-8",
                 decimal_comma: bool = False) -> bytes:
    columns = recipe.cells()
    if decimal_comma:  # the European way: 1.234,5 (only sensible with a delimiter other than the comma)
        columns = [[_decimal_comma(v) for v in column] for column in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n" if recipe.n_rows % 2 else "\n")
    writer.writerow([c.name for c in recipe.columns])
    writer.writerows(zip(*columns, strict=True))
    text = buffer.getvalue()
    if encoding == "utf-8-sig":
        return text.encode("utf-8-sig")
    return text.encode(encoding, errors="replace")


def _decimal_comma(value: str) -> str:
    return value.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


@st.composite
def csv_files(draw, min_rows: int = 1, max_rows: int = 300, max_columns: int = 6) -> CsvFile:
    recipe = draw(table_recipes(min_rows, max_rows, max_columns))
    delimiter = draw(st.sampled_from((",", ",", ";", "\t", "|")))
    encoding = draw(st.sampled_from(("utf-8", "utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16")))
    decimal_comma = delimiter != "," and draw(st.booleans())
    return CsvFile(to_csv_bytes(recipe, delimiter, encoding, decimal_comma), recipe, delimiter, encoding,
                   decimal_comma)


@st.composite
def trainable_csv_files(draw, max_rows: int = 200, max_columns: int = 5) -> CsvFile:
    """Messy tables big enough that training is possible (20 rows are needed), with a target column at the end."""
    file = draw(csv_files(min_rows=16, max_rows=max_rows, max_columns=max_columns))
    target_kind = draw(st.sampled_from(("category", "boolean", "float", "int", "one_class", "missing", "mixed")))
    target = ColumnRecipe("target", target_kind, draw(st.sampled_from((0.0, 0.0, 0.1))), draw(st.integers(0, 2**16)),
                          draw(st.lists(st.tuples(st.integers(0, 10_000), odd_cell), max_size=2)))
    recipe = TableRecipe([*file.recipe.columns, target], file.recipe.n_rows)
    return CsvFile(to_csv_bytes(recipe, file.delimiter, file.encoding, file.decimal_comma), recipe, file.delimiter,
                   file.encoding, file.decimal_comma)


def raw_csv(text: str, encoding: str = "utf-8") -> CsvFile:
    """A hand-written file, for the @example regressions: what a property found, in its smallest form."""
    return CsvFile(text.encode(encoding), TableRecipe([], 0), ",", encoding, False)


def rows(header: str, make_row, n: int) -> str:
    """A header line and n rows made by make_row(i)."""
    return header + "\n" + "".join(make_row(i) + "\n" for i in range(n))
