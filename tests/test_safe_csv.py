import pandas as pd

from workbench.safe_csv import neutralise_formulas, to_safe_csv


def test_formulas_in_text_cells_and_headers_are_neutralised():
    frame = pd.DataFrame({"=HYPERLINK(1)": ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "plain", "-x"],
                          "amount": [-1.5, 2.0, 3.0, 4.0, 5.0]})
    safe = neutralise_formulas(frame)
    assert list(safe.columns) == ["'=HYPERLINK(1)", "amount"]
    assert safe.iloc[:, 0].tolist() == ["'=cmd|' /C calc'!A0", "'+1+1", "'@SUM(A1)", "plain", "'-x"]
    assert safe["amount"].tolist() == [-1.5, 2.0, 3.0, 4.0, 5.0]
    text = to_safe_csv(frame)
    assert "\n=" not in text and ",=" not in text
