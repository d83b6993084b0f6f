"""Bytes or a path in, a typed table and notes out. Refuses what it cannot read with one plain sentence.

Reading is done by pyarrow's multithreaded CSV reader with every column as text; types are then
inferred here, column by column, so that decimal commas, thousands separators, `inf` and stray text
in numeric columns are handled the same way whatever the file's dialect.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from charset_normalizer import from_bytes
from pandas.api import types as ptypes

from workbench.config import get_settings
from workbench.dates import FIRST_YEAR, LAST_YEAR, outside_range, parse_iso8601
from workbench.errors import UserError

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
# What spreadsheets write in a cell whose formula failed (Excel's and LibreOffice's error values): the value is
# unknown, so missing, and a note says how many.
SPREADSHEET_ERRORS = {"#n/a", "#div/0!", "#value!", "#ref!", "#name?", "#num!", "#null!", "#spill!", "#calc!",
                      "#getting_data", "#field!"}
MISSING_TOKENS = {"", "na", "n/a", "nan", "null", "none", "-", "?", "missing"} | SPREADSHEET_ERRORS
# Only true/false become booleans: yes/no and y/n stay as written, so predicted labels read like the data.
TRUE_TOKENS, FALSE_TOKENS = {"true"}, {"false"}
# A column counts as numeric with stray text when at least this share of its values are numbers.
MOSTLY_NUMERIC = 0.95
BINARY_SIGNATURES = {
    b"PK\x03\x04": "a ZIP archive (an .xlsx workbook is one)",
    b"\xd0\xcf\x11\xe0": "an old Excel or Office document",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip archive",
    b"PAR1": "a Parquet file",
}
# Excel's "Unicode text" and some exports write UTF-16 (or UTF-32) with a byte-order mark; longest mark first.
WIDE_ENCODINGS = {
    b"\xff\xfe\x00\x00": "utf-32", b"\x00\x00\xfe\xff": "utf-32", b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16",
}
# Thousands separators: ',' or '.', a space ("1 234,50"; the no-break and narrow no-break spaces that French
# spreadsheets write read as one), or the Swiss apostrophe ("1'234.50").
_DOT_DECIMAL = re.compile(r"^[+-]?(\d{1,3}([,' ’]\d{3})+|\d+)(\.\d+)?$")
_DOT_THOUSANDS = re.compile(r"[,' ’]")
_SPACES = re.compile(r"[\u00a0\u202f\u2009]")
_DOT_THOUSAND_GROUPS = re.compile(r"^[+-]?\d{1,3}(\.\d{3})+$")
_COMMA_DECIMAL = re.compile(r"^[+-]?(\d{1,3}([. ]\d{3})+|\d+)(,\d+)?([eE][+-]?\d+)?$")
# Amounts and shares as spreadsheets write them: a currency sign before the number ("$1,234.50", "-€ 12") or after it
# ("12,50 €"), a per cent sign after it ("12.5%", read as 12.5); accounting's negatives in brackets ("(1,234.00)").
_UNIT_SIGN = re.compile(r"^\s*([+-]?)\s*[$€£¥₹]\s*|\s*[%$€£¥₹]\s*$")
_BRACKETED = re.compile(r"^\s*\(\s*([^()]*?)\s*\)\s*$")
_TRAILING_MINUS = re.compile(r"^\s*(\d[\d.,' ]*)\s*-\s*$")  # SAP's negatives: "1.234,56-"
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


@dataclass
class Ingested:
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    encoding: str = "utf-8"
    delimiter: str = ","
    # Per column, the text of the cells that were read as missing although they held something (a word in a number
    # column, 'inf', a date that did not parse), indexed by row position: predictions flag those rows.
    unread: dict[str, pd.Series] = field(default_factory=dict)


def read_path(path: str | Path) -> bytes:
    """Read a file after checking its size, so an oversized file is refused before it is read whole."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"There is no file at {path}.")
    check_size(path.stat().st_size)
    return path.read_bytes()


def check_size(n_bytes: int) -> None:
    limit = get_settings().max_upload_mb
    if n_bytes > limit * 1024 * 1024:
        raise UserError(f"The file is {n_bytes / 1024 / 1024:.0f} MB, over the {limit} MB limit.")


def ingest_bytes(data: bytes) -> Ingested:
    check_size(len(data))
    if not data.strip():
        raise UserError("The file is empty.")
    _refuse_binary(data)
    text, encoding, notes = _decode(data)
    delimiter = _detect_delimiter(text)
    if delimiter != ",":
        notes.append(f"Columns are separated by a {DELIMITER_NAMES[delimiter]}.")
    table = _parse(text, delimiter)
    names, rename_notes = _fix_headers(table.column_names)
    notes += rename_notes
    table = table.rename_columns(names)
    if table.num_rows == 0:
        raise UserError("The file has a header but no data rows.")
    max_rows = get_settings().max_rows
    if table.num_rows > max_rows:
        raise UserError(f"The file has {table.num_rows:,} rows, over the limit of {max_rows:,}.")
    unread: dict[str, pd.Series] = {}
    decimal_commas: set[str] = set()
    frame = pd.DataFrame({name: _infer_column(name, column, delimiter, notes, unread, decimal_commas)
                          for name, column in zip(table.column_names, table.columns, strict=True)})
    if decimal_commas:
        _note_dots_that_may_be_thousands(frame, table, notes, decimal_commas)
    return Ingested(frame, notes, encoding, delimiter, unread)


def _note_dots_that_may_be_thousands(frame: pd.DataFrame, table: pa.Table, notes: list[str],
                                     decimal_commas: set[str]) -> None:
    """In a file whose decimal point is a comma (another column showed it), a column read as plain numbers whose
    every dot is followed by groups of three digits ('1.234', '12.345') may write whole numbers with dots between
    the thousands. It is read as written, with the dot as the decimal point, and a note says so: a prediction file
    without a column that shows the comma would read it that way too, and a model must see its numbers at
    prediction as it saw them in training."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name in decimal_commas or not ptypes.is_numeric_dtype(frame[name]) or ptypes.is_bool_dtype(frame[name]):
            continue
        text = pd.Series(pc.utf8_trim_whitespace(column).to_pandas(), dtype=object).where(frame[name].notna())
        dotted = text.dropna().str.contains(".", regex=False)
        if not dotted.any() or not text.dropna()[dotted].str.match(_DOT_THOUSAND_GROUPS).all():
            continue
        example = dotted.idxmax()
        notes.append(f"Column '{name}' writes numbers such as '{text[example]}' while the file's decimal point is a "
                     f"comma: if the dots separate thousands, these are whole numbers ({text[example].replace('.', '')}"
                     f"), but they were read with the dot as a decimal point ({frame[name][example]:g}). If so, "
                     "remove the dots from the file and add it again.")


def _wide_encoding(data: bytes) -> str | None:
    return next((encoding for mark, encoding in WIDE_ENCODINGS.items() if data.startswith(mark)), None)


def _refuse_binary(data: bytes) -> None:
    if _wide_encoding(data):  # its zero bytes are text
        return
    for signature, what in BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise UserError(f"This file is {what}, not a CSV text file; export it as CSV first.")
    if b"\x00" in data[:8192]:
        raise UserError("This file is binary, not a CSV text file; export it as CSV first.")


def _decode(data: bytes) -> tuple[str, str, list[str]]:
    if wide := _wide_encoding(data):
        try:  # the codec reads the mark, picks the byte order and drops the mark
            return data.decode(wide), wide, [f"The file is {wide.upper()}; it was read as such."]
        except UnicodeDecodeError:
            raise UserError(f"The file starts like {wide.upper()} text but is not valid {wide.upper()}; save it "
                            "again as CSV (UTF-8).") from None
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig", ["The file starts with a UTF-8 byte-order mark; it was removed."]
    try:
        return data.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError:
        pass
    guess = from_bytes(data[:200_000]).best()
    encoding = guess.encoding if guess is not None else "cp1252"
    if encoding in ("ascii", "utf_8"):
        encoding = "cp1252"
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        encoding = "latin-1"  # decodes any byte sequence
        text = data.decode(encoding)
    return text, encoding, [f"The file is not UTF-8; it was read as {encoding}."]


def _detect_delimiter(text: str) -> str:
    """Pick the delimiter that gives the most columns, the same number on every sampled line."""
    sample_lines = text[:65536].splitlines()[:50]
    if len(text) > 65536 and len(sample_lines) > 1:
        sample_lines = sample_lines[:-1]  # the last line of a cut sample may be partial
    sample = "\n".join(sample_lines)
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if r]
        except csv.Error:
            continue
        if not rows:
            continue
        widths = [len(r) for r in rows]
        consistent = sum(w == widths[0] for w in widths)
        score = (consistent if widths[0] > 1 else 0, widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _parse(text: str, delimiter: str) -> pa.Table:
    try:
        header = next(csv.reader(io.StringIO(text[:65536], newline=""), delimiter=delimiter), [])
    except csv.Error as exc:  # e.g. a header cell over the csv module's field size limit
        raise UserError(f"The header line could not be read as CSV ({exc}).") from None
    try:
        # Read everything as text first; types are decided afterwards, column by column.
        return pacsv.read_csv(
            _arrow_owned(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise UserError(_explain_parse_error(text, delimiter, str(exc))) from None


def _arrow_owned(data: bytes) -> pa.BufferReader:
    """The bytes copied into Arrow's own memory. Given a Python file object (or a buffer of Python bytes), the CSV
    reader's background I/O thread calls back into Python to read it and, at the end, to let it go; when that
    thread still waits for the GIL as the interpreter shuts down, Python ends the thread inside Arrow's C++ code
    and the process aborts: "terminate called without an active exception", exit 134 (seen after `train` refused
    a table, under load)."""
    buffer = pa.allocate_buffer(len(data))
    pa.FixedSizeBufferWriter(buffer).write(data)
    return pa.BufferReader(buffer)


def _explain_parse_error(text: str, delimiter: str, message: str) -> str:
    """Find the first ragged row with the slow reader, only on this error path, to name its line."""
    # newline="": a bare carriage return inside a row ends that row, as it does for pyarrow.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    width = None
    try:
        for row in reader:
            if width is None:
                width = len(row)
            elif row and len(row) != width:
                return (f"Line {reader.line_num} has {len(row)} fields but the header has {width}; "
                        "fix that row or remove it.")
    except csv.Error as exc:
        return f"The file could not be read as CSV (line {reader.line_num}: {exc})."
    return f"The file could not be read as CSV ({message.removeprefix('CSV parse error: ')})."


def _fix_headers(names: list[str]) -> tuple[list[str], list[str]]:
    notes, fixed, seen = [], [], set()
    for position, raw in enumerate(names, start=1):
        name = " ".join(str(raw).split())  # control characters and newlines become spaces
        if not name:
            name = f"column_{position}"
            notes.append(f"Column {position} had no name; it is called '{name}'.")
        if name in seen:
            base, k = name, 2
            while f"{base}_{k}" in seen:
                k += 1
            name = f"{base}_{k}"
            notes.append(f"Column {position} repeats the name '{base}'; it is called '{name}'.")
        seen.add(name)
        fixed.append(name)
    return fixed, notes


def _infer_column(name: str, column: pa.ChunkedArray, delimiter: str, notes: list[str],
                  unread: dict[str, pd.Series], decimal_commas: set[str]) -> pd.Series:
    """Arrow compute for the common cases (a million rows in milliseconds); pandas only for repairs."""
    text = pc.utf8_trim_whitespace(column)
    lowered = pc.utf8_lower(text)
    missing = pc.is_in(lowered, value_set=pa.array(sorted(MISSING_TOKENS)))
    errors = pc.filter(text, pc.is_in(lowered, value_set=pa.array(sorted(SPREADSHEET_ERRORS))))
    if len(errors):
        notes.append(f"Column '{name}' has {len(errors)} spreadsheet error value{'s' if len(errors) > 1 else ''} "
                     f"(such as {_examples(pd.Series(errors.to_pylist(), dtype=object))}), where a formula failed; "
                     f"{'they are' if len(errors) > 1 else 'it is'} treated as missing.")
    text = pc.if_else(missing, pa.scalar(None, pa.string()), text)
    present = pc.drop_null(text)
    if len(present) == 0:
        return pd.Series(np.nan, index=range(len(column)), dtype="float64")
    if _zero_padded_codes(present):
        example = pc.filter(present, pc.starts_with(present, "0"))[0].as_py()
        notes.append(f"Column '{name}' writes its values with leading zeros (such as '{example}'): they were read as "
                     "codes (text), which keep the zeros, not as numbers.")
        return pd.Series(text.to_pandas()).astype(object)
    numbers = _to_number(name, text, present, delimiter, notes, decimal_commas)
    if numbers is not None:
        _keep_unread(name, text, numbers, unread)
        return numbers
    present_lower = pc.drop_null(pc.if_else(missing, pa.scalar(None, pa.string()), lowered))
    if pc.all(pc.is_in(present_lower, value_set=pa.array(sorted(TRUE_TOKENS | FALSE_TOKENS)))).as_py() \
            and pc.count_distinct(present_lower).as_py() == 2:
        is_true = pc.if_else(missing, pa.scalar(None, pa.bool_()),
                             pc.is_in(lowered, value_set=pa.array(sorted(TRUE_TOKENS))))
        return pd.Series(is_true.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get))
    values = pd.Series(text.to_pandas())
    dates = _to_datetime(values, present)
    if dates is None:
        return values.astype(object)
    if _keep_unread(name, text, dates, unread):
        lost = unread[name]
        far = outside_range(lost).to_numpy()
        if far.any():
            notes.append(f"Column '{name}' has {int(far.sum())} dates outside the years {FIRST_YEAR} to {LAST_YEAR}, "
                         f"which cannot be held (such as {_examples(lost[far])}; systems often write such a date for "
                         "'no date'); they are treated as missing.")
        if not far.all():
            n = int((~far).sum())
            what = "1 value that is not a date" if n == 1 else f"{n} values that are not dates"
            notes.append(f"Column '{name}' is mostly dates but has {what} (such as {_examples(lost[~far])}); "
                         f"{'it is' if n == 1 else 'they are'} treated as missing.")
    return dates


def _zero_padded_codes(present: pa.ChunkedArray) -> bool:
    """Digits only, all of one width of at least 2, some with a leading zero: codes (ZIP codes '01234', product
    codes '007'), whose zeros a number would drop."""
    lengths = pc.min_max(pc.utf8_length(present))
    if lengths["min"].as_py() != lengths["max"].as_py() or lengths["min"].as_py() < 2:
        return False
    return bool(pc.all(pc.match_substring_regex(present, r"^\d+$")).as_py()
                and pc.any(pc.starts_with(present, "0")).as_py())


def _examples(values: pd.Series) -> str:
    return ", ".join(f"'{v}'" for v in values.unique()[:3])


def _keep_unread(name: str, text: pa.ChunkedArray, converted: pd.Series, unread: dict[str, pd.Series]) -> bool:
    """Record the cells that held text but became missing in `converted`; whether there were any."""
    lost = pc.is_valid(text).to_numpy(zero_copy_only=False) & converted.isna().to_numpy()
    if not lost.any():
        return False
    unread[name] = pd.Series(pc.filter(text, pa.array(lost)).to_pylist(), index=np.flatnonzero(lost), dtype=object)
    return True


def _to_number(name: str, text: pa.ChunkedArray, present: pa.ChunkedArray, delimiter: str,
               notes: list[str], decimal_commas: set[str]) -> pd.Series | None:
    """Numbers with either decimal convention; None when the column is not (mostly) numeric."""
    try:
        numbers = pd.Series(pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False))
    except pa.ArrowInvalid:
        repaired = _repair_numbers(name, pd.Series(present.to_pandas()), delimiter, notes, decimal_commas)
        if repaired is None:
            return None
        numbers = _spread(repaired, pc.is_valid(text).to_numpy(zero_copy_only=False))
    is_inf = np.isinf(numbers)
    if is_inf.any():
        written = pd.Series(pc.filter(text, pa.array(is_inf.to_numpy())).to_pylist(), dtype=object)
        notes.append(f"Column '{name}' has {int(is_inf.sum())} numbers that are infinite or too large to hold (such "
                     f"as {_examples(written)}); they are treated as missing.")
        numbers = numbers.mask(is_inf)
    if numbers.notna().all() and (numbers % 1 == 0).all() and numbers.abs().max() < 2**63:  # 1e308 stays a float
        return numbers.astype("int64")
    return numbers


def _spread(values: pd.Series, where: np.ndarray) -> pd.Series:
    """Put the values of the present cells back at their rows; missing elsewhere."""
    out = np.full(len(where), np.nan)
    out[where] = values.to_numpy(dtype="float64")
    return pd.Series(out)


def _without_signs(values: pd.Series) -> pd.Series:
    """Currency and per cent signs taken off, brackets and a minus after the number made a minus in front:
    "($1,234.00)", "$(1,234.00)" and "1,234.00-" -> "-1,234.00"."""
    unsigned = values.str.replace(_UNIT_SIGN, r"\1", regex=True)
    unsigned = unsigned.str.replace(_BRACKETED, r"-\1", regex=True).str.replace(_UNIT_SIGN, r"\1", regex=True)
    return unsigned.str.replace(_TRAILING_MINUS, r"-\1", regex=True)


def _repair_numbers(name: str, present: pd.Series, delimiter: str, notes: list[str],
                    decimal_commas: set[str]) -> pd.Series | None:
    """The slow path, for columns that are not plain numbers: decimal commas, thousands separators, currency and
    per cent signs, negatives in brackets, a few stray words. A sample decides first, so text columns leave at once.
    One note says how the column writes its numbers, with an example."""
    written = present
    present = present.str.replace(_SPACES, " ", regex=True).str.replace("\u2212", "-", regex=False)  # and − (U+2212)
    sample = present.iloc[:2000]
    unsigned = _without_signs(sample)
    signed = bool((unsigned != sample).any())
    looks_numeric = (pd.to_numeric(unsigned, errors="coerce").notna() | unsigned.str.match(_DOT_DECIMAL)
                     | unsigned.str.match(_COMMA_DECIMAL))
    if looks_numeric.mean() < MOSTLY_NUMERIC:
        return None
    ways = []
    if signed:
        present = _without_signs(present)
        changed = present != written
        ways += [way for way, mark in (("a currency or per cent sign", "[$€£¥₹%]"), ("negatives in brackets", r"\("),
                                       ("negatives with the minus after them", r"\d\s*-\s*$"))
                 if (changed & written.str.contains(mark, regex=True)).any()]
    plain = pd.to_numeric(present, errors="coerce")
    best = plain
    if plain.notna().sum() < len(present):
        dot = present.str.match(_DOT_DECIMAL)
        comma = present.str.match(_COMMA_DECIMAL)
        # "1,234" fits both; the file's delimiter breaks the tie (';' and tab go with decimal commas).
        prefer_comma = comma.sum() > dot.sum() or (comma.sum() == dot.sum() and delimiter in (";", "\t"))
        converted = None
        if prefer_comma and comma.sum() > plain.notna().sum():
            converted = present[comma].str.replace(r"[. ]", "", regex=True).str.replace(",", ".", regex=False)
            ways.append("decimal commas")
            decimal_commas.add(name)
        elif dot.sum() > plain.notna().sum():
            converted = present[dot].str.replace(_DOT_THOUSANDS, "", regex=True)
            ways.append("thousands separators")
        if converted is not None:
            best = pd.to_numeric(converted, errors="coerce").reindex(present.index).fillna(plain)
    if best.notna().sum() / len(present) < MOSTLY_NUMERIC:
        return None
    read = best.notna() & ((written != present) | plain.isna())  # the cells that needed more than a plain read
    if ways and read.any():
        example = read.idxmax()
        listed = ways[0] if len(ways) == 1 else f"{', '.join(ways[:-1])} and {ways[-1]}"
        notes.append(f"Column '{name}' writes its numbers with {listed}; they were read as numbers "
                     f"('{written[example]}' as {best[example]:g}).")
    stray = best.isna()
    if stray.any():
        examples = ", ".join(f"'{v}'" for v in written[stray].unique()[:3])
        notes.append(f"Column '{name}' is mostly numbers but has {int(stray.sum())} text values "
                     f"(such as {examples}); they are treated as missing.")
    return best


def _to_datetime(values: pd.Series, present: pa.ChunkedArray) -> pd.Series | None:
    sample = pd.Series(present.slice(0, 200).to_pandas())
    if sample.str.match(_DATE_LIKE).mean() < 0.95:
        return None
    parsed = parse_iso8601(values)  # a column may hold times with and without an offset
    far = outside_range(values[parsed.isna()])
    if parsed.notna().sum() + far.sum() < 0.95 * len(present):
        return None
    return parsed.dt.tz_localize(None)
