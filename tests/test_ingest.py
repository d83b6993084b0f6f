"""Ingestion: every malformed input refused with its sentence, every repaired input noted."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.errors import UserError
from workbench.ingest import ingest_bytes, read_path


def ingest(text: str | bytes, encoding: str = "utf-8"):
    return ingest_bytes(text.encode(encoding) if isinstance(text, str) else text)


# -- refused, with one plain sentence ------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \n\n  "])
def test_empty_file_is_refused(data):
    with pytest.raises(UserError, match="The file is empty"):
        ingest_bytes(data)


def test_header_without_rows_is_refused():
    with pytest.raises(UserError, match="header but no data rows"):
        ingest("a,b,c\n")


def test_xlsx_disguised_as_csv_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UserError, match="ZIP archive .*export it as CSV"):
        ingest_bytes(buffer.getvalue())


def test_binary_file_is_refused():
    with pytest.raises(UserError, match="binary, not a CSV"):
        ingest_bytes(b"abc\x00\x01\x02" * 100)


def test_ragged_row_is_refused_naming_the_line():
    with pytest.raises(UserError, match=r"Line 4 has 4 fields but the header has 3"):
        ingest("a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n")


def test_short_row_is_refused_naming_the_line():
    with pytest.raises(UserError, match=r"Line 3 has 2 fields but the header has 3"):
        ingest("a,b,c\n1,2,3\n4,5\n7,8,9\n")


def test_file_over_size_limit_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MAX_UPLOAD_MB", "1")
    path = tmp_path / "big.csv"
    path.write_bytes(b"a\n" + b"1\n" * 700_000)
    with pytest.raises(UserError, match="over the 1 MB limit"):
        read_path(path)


def test_file_over_row_limit_is_refused(monkeypatch):
    monkeypatch.setenv("WORKBENCH_MAX_ROWS", "10")
    with pytest.raises(UserError, match="11 rows, over the limit of 10"):
        ingest("a\n" + "1\n" * 11)


# -- repaired, with a note ----------------------------------------------------------------------


def test_utf8_bom_is_removed_and_noted():
    result = ingest_bytes("\ufeffname,value\nx,1\n".encode())
    assert list(result.table.columns) == ["name", "value"]
    assert any("byte-order mark" in n for n in result.notes)


def test_cp1252_is_detected_and_noted():
    result = ingest("city,price\nZürich,3\nKöln,4\nMálaga,5\n", encoding="cp1252")
    assert result.table["city"].tolist() == ["Zürich", "Köln", "Málaga"]
    assert any("not UTF-8" in n for n in result.notes)


@pytest.mark.parametrize("delimiter,word", [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_delimiters_are_detected(delimiter, word):
    text = delimiter.join(["a", "b", "c"]) + "\n" + delimiter.join(["1", "x", "2.5"]) + "\n"
    result = ingest(text * 1)
    assert list(result.table.columns) == ["a", "b", "c"]
    assert result.table["c"].iloc[0] == 2.5
    assert any(word in n for n in result.notes)


def test_decimal_comma_with_semicolons():
    result = ingest("name;amount\nx;1,5\ny;1.234,75\nz;-0,25\n")
    assert result.table["amount"].tolist() == [1.5, 1234.75, -0.25]
    assert any("decimal commas" in n for n in result.notes)


def test_thousands_separators_in_quoted_values():
    result = ingest('name,amount\nx,"1,234.5"\ny,"2,000,000"\nz,7\n')
    assert result.table["amount"].tolist() == [1234.5, 2_000_000, 7]
    assert any("thousands separators" in n for n in result.notes)


def _european(v: float) -> str:
    return f"{v:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")


def _bracketed(v: float, sign: str = "") -> str:
    return f"({sign}{-v:,.2f})" if v < 0 else f"{sign}{v:,.2f}"


STYLES = {  # how a spreadsheet writes v, to how many decimals, and what the note names (when a value shows it)
    "dollars": (lambda v: f"${v:,.2f}", 2, "currency or per cent sign"),
    "minus before the sign": (lambda v: f"{'-' if v < 0 else ''}€ {abs(v):.2f}", 2, "currency or per cent sign"),
    "pounds": (lambda v: f"£{v:.2f}", 2, "currency or per cent sign"),
    "per cent": (lambda v: f"{v:.2f}%", 2, "currency or per cent sign"),
    "spaced per cent": (lambda v: f"{v:,.2f} %", 2, "currency or per cent sign"),
    "yen": (lambda v: f"¥{v:,.0f}", 0, "currency or per cent sign"),
    "euros after, decimal comma": (lambda v: f"{_european(v)} €", 2, "currency or per cent sign"),
    "accounting negatives": (_bracketed, 2, "negatives in brackets"),
    "accounting dollars": (lambda v: _bracketed(v, "$"), 2, "currency or per cent sign"),
}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e7, 1e7, allow_nan=False), min_size=1, max_size=30), st.sampled_from(sorted(STYLES)))
def test_numbers_written_with_a_currency_or_per_cent_sign_read_as_the_numbers(values, style):
    """As spreadsheets export amounts and shares: "$1,234.50", "-€ 3.00", "12,50 €", "12.5%" (read as 12.5), and
    accounting's negatives "(1,234.00)"; one note names how, with an example."""
    write, decimals, named = STYLES[style]
    result = ingest("amount\n" + "".join(f'"{write(v)}"\n' for v in values))
    expected = [float(f"{v:.{decimals}f}") for v in values]
    np.testing.assert_allclose(result.table["amount"].to_numpy(dtype="float64"), expected, rtol=1e-12)
    shown = True
    if style == "accounting negatives":  # no sign: a note only where a value has brackets or a separator
        negative = any(v < 0 for v in values)  # in brackets, as _bracketed writes them: -0.004 is "(0.00)"
        shown = negative or any(abs(v) >= 999.995 for v in values)
        named = "negatives in brackets" if negative else "thousands separators"
    notes = [n for n in result.notes if "'amount'" in n]
    assert len(notes) == int(shown) and all(named in n and "' as " in n for n in notes), notes


SEPARATORS = {  # how people write v with a thousands separator other than ',' or '.', to two decimals
    "space, decimal comma": lambda v: f"{v:,.2f}".replace(",", " ").replace(".", ","),
    "no-break space, decimal comma": lambda v: f"{v:,.2f}".replace(",", "\u00a0").replace(".", ","),
    "narrow no-break space (French), decimal comma": lambda v: f"{v:,.2f}".replace(",", "\u202f").replace(".", ","),
    "space, decimal point": lambda v: f"{v:,.2f}".replace(",", " "),
    "apostrophe (Swiss)": lambda v: f"{v:,.2f}".replace(",", "'"),
    "right quote (Swiss)": lambda v: f"{v:,.2f}".replace(",", "\u2019"),
}


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(-1e7, 1e7, allow_nan=False), min_size=1, max_size=30), st.sampled_from(sorted(SEPARATORS)))
def test_numbers_with_spaces_or_apostrophes_between_thousands_read_as_the_numbers(values, style):
    written = [SEPARATORS[style](v) for v in values]
    result = ingest("amount\n" + "".join(f'"{w}"\n' for w in written))
    np.testing.assert_allclose(result.table["amount"].to_numpy(dtype="float64"),
                               [float(f"{v:.2f}") for v in values], rtol=1e-12)
    plain = all(w.lstrip("-").replace(".", "").isdigit() for w in written)
    notes = [n for n in result.notes if "'amount'" in n]
    assert len(notes) == int(not plain) and all("' as " in n for n in notes), notes


def _german(v: int) -> str:
    return f"{v:,}".replace(",", ".")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-10**9, 10**9), min_size=1, max_size=20), st.booleans())
def test_dots_that_may_separate_thousands_in_a_file_with_decimal_commas_are_pointed_out(counts, commas_elsewhere):
    """'12.345' in a German file is likely twelve thousand: its prices show the decimal comma ('3,20'). It is read as
    written (a prediction file without the prices would read it so too) and a note says what to do; '1.000.000'
    can only be thousands."""
    written = [_german(v) for v in counts]
    result = ingest("Menge;Preis\n" + "".join(f"{w};{'3,20' if commas_elsewhere else '3'}\n" for w in written))
    dotted = any("." in w for w in written)
    grouped = any(w.count(".") > 1 for w in written)
    if grouped or not dotted:
        assert result.table["Menge"].tolist() == counts
    else:
        assert result.table["Menge"].tolist() == [float(w) for w in written]
    pointed = [n for n in result.notes if n.startswith("Column 'Menge' writes numbers such as")]
    assert len(pointed) == int(commas_elsewhere and dotted and not grouped)
    assert all("remove the dots from the file" in n for n in pointed)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 99_999), min_size=1, max_size=20), st.integers(1, 7))
def test_codes_written_with_leading_zeros_keep_them(values, width):
    """ZIP codes ('01234') and product codes ('007'): one width for all, some with a leading zero, read as text that
    keeps the zeros; numbers of one width without a leading zero, or of mixed widths, stay numbers."""
    written = [f"{v:0{width}d}" for v in values]
    result = ingest("code,x\n" + "".join(f"{w},{i}\n" for i, w in enumerate(written)))
    codes = width >= 2 and len({len(w) for w in written}) == 1 and any(w.startswith("0") for w in written)
    assert result.table["code"].tolist() == (written if codes else values)
    assert sum("leading zeros" in n for n in result.notes) == int(codes)


def test_spreadsheet_error_values_are_missing_with_one_note_a_column():
    result = ingest("price,qty\n12.5,1\n#DIV/0!,2\n#VALUE!,#NUM!\n#N/A,4\n7,5\n")
    assert result.table["price"].tolist()[::4] == [12.5, 7.0] and result.table["price"].isna().sum() == 3
    assert str(result.table["qty"].dtype) == "float64" and result.table["qty"].isna().sum() == 1
    assert [n for n in result.notes if "spreadsheet" in n] == [
        "Column 'price' has 3 spreadsheet error values (such as '#DIV/0!', '#VALUE!', '#N/A'), where a formula "
        "failed; they are treated as missing.",
        "Column 'qty' has 1 spreadsheet error value (such as '#NUM!'), where a formula failed; it is treated as "
        "missing."]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e7, 1e7, allow_nan=False), min_size=1, max_size=30), st.booleans())
def test_negatives_written_with_the_minus_after_or_as_a_true_minus_sign_read_as_negative(values, sap):
    """SAP exports write '1.234,56-'; typeset tables write '−3.5' with the minus sign U+2212."""
    written = [(f"{_european(abs(v))}-" if v < 0 else _european(v)) if sap else f"{v:.2f}".replace("-", "\u2212")
               for v in values]
    result = ingest("amount\n" + "".join(f'"{w}"\n' for w in written))
    np.testing.assert_allclose(result.table["amount"].to_numpy(dtype="float64"),
                               [float(f"{v:.2f}") for v in values], rtol=1e-12)
    if sap and any(w.endswith("-") for w in written):
        assert any("negatives with the minus after them" in n for n in result.notes), result.notes


def test_a_price_column_gets_one_note_with_an_example():
    result = ingest("price\n\"$1,234.50\"\n\"($20.00)\"\n\"$3.00\"\n")
    assert result.table["price"].tolist() == [1234.5, -20.0, 3.0]
    assert result.notes == ["Column 'price' writes its numbers with a currency or per cent sign, negatives in brackets "
                            "and thousands separators; they were read as numbers ('$1,234.50' as 1234.5)."]


def test_words_with_a_currency_sign_stay_text():
    result = ingest("price\n$ unknown\n€ on request\nfree\n(see note)\n12 €\n")
    assert result.table["price"].tolist() == ["$ unknown", "€ on request", "free", "(see note)", "12 €"]


def test_crlf_and_quoted_newlines():
    result = ingest('id,comment,score\r\n1,"line one\r\nline two",3\r\n2,plain,4\r\n')
    assert len(result.table) == 2
    assert "line two" in result.table["comment"].iloc[0]
    assert result.table["score"].tolist() == [3, 4]


def test_blank_and_duplicate_headers_are_renamed():
    result = ingest("a,,a,b\n1,2,3,4\n")
    assert list(result.table.columns) == ["a", "column_2", "a_2", "b"]
    assert any("had no name" in n for n in result.notes)
    assert any("repeats the name 'a'" in n for n in result.notes)


def test_inf_and_numbers_too_large_to_hold_become_missing_and_are_noted_with_examples():
    result = ingest("x,y\n1,inf\n2,-inf\n3,4\n4,1e400\n5,6\n")
    assert result.table["y"].isna().sum() == 3 and result.table["y"].notna().sum() == 2
    assert result.unread["y"].tolist() == ["inf", "-inf", "1e400"]  # so a prediction flags those rows
    assert [n for n in result.notes if "'y'" in n] == [
        "Column 'y' has 3 numbers that are infinite or too large to hold (such as 'inf', '-inf', '1e400'); they are "
        "treated as missing."]


def test_dates_pandas_cannot_hold_keep_their_column_a_date_column_and_are_noted():
    """'9999-12-31' is what many systems write for 'no end date': a column with many of them is still dates."""
    ends = ["9999-12-31", "2024-03-01", "0001-01-01", "2024-05-06", "9999-12-31", "", "2023-01-02"] * 5 + ["bad"]
    result = ingest("end,y\n" + "".join(f"{e},{i}\n" for i, e in enumerate(ends)))
    end = result.table["end"]
    assert str(end.dtype) == "datetime64[ns]"
    assert end.notna().sum() == 15 and end.dropna().dt.year.min() >= 2023
    notes = [n for n in result.notes if "'end'" in n]
    assert notes == [
        "Column 'end' has 15 dates outside the years 1678 to 2261, which cannot be held (such as '9999-12-31', "
        "'0001-01-01'; systems often write such a date for 'no date'); they are treated as missing.",
        "Column 'end' is mostly dates but has 1 value that is not a date (such as 'bad'); it is treated as missing."]


def test_mostly_numeric_column_with_stray_text_is_noted():
    rows = "\n".join(str(i) for i in range(40))
    result = ingest(f"v\n{rows}\noops\n")
    assert pd.api.types.is_float_dtype(result.table["v"])
    assert result.table["v"].isna().sum() == 1
    assert any("mostly numbers" in n and "'oops'" in n for n in result.notes)


def test_types_are_inferred():
    result = ingest("n,f,b,d,s\n1,1.5,TRUE,2024-01-02,red\n2,,false,2024-02-03,blue\n3,2.5,True,2024-03-04,red\n")
    t = result.table
    assert t["n"].dtype == np.int64
    assert t["f"].dtype == np.float64 and t["f"].isna().sum() == 1
    assert t["b"].tolist() == [True, False, True]
    assert pd.api.types.is_datetime64_any_dtype(t["d"])
    assert t["s"].tolist() == ["red", "blue", "red"]


def test_missing_tokens_become_missing():
    result = ingest("a,b\n1,NA\n2,\n3,null\n4,x\n")
    assert result.table["b"].isna().sum() == 3


def test_yes_no_labels_stay_as_written():
    result = ingest("label\nyes\nno\nyes\n")
    assert result.table["label"].tolist() == ["yes", "no", "yes"]
