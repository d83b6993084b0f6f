"""Widgets rendered from a hyperparameter schema, and the one-row "what if" form."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import streamlit as st
from pandas.api import types as ptypes

from ui.text import escape_markdown

COLUMNS_PER_ROW = 2  # three made number inputs too narrow to show a learning rate


def param_widgets(params: Sequence[Mapping[str, Any]], key_prefix: str) -> dict[str, Any]:
    """One widget per hyperparameter: the basic ones in a grid, the rest in an "Advanced settings" expander; returns
    {name: value} as the engine expects. A widget's value lives in session state under f"{key_prefix}.{name}" (its
    toggle, where 0 is a switch, under that key + ".zero"), so a page can prefill it with `seed_param_state`.

    Schema entries: {name, label, type, default, help, advanced, zero, suggested, min?, max?, choices?}; type is int,
    float, bool, str or int_list (shown as '256,256').
    """
    values: dict[str, Any] = {}
    basic = [spec for spec in params if not spec.get("advanced")]
    advanced = [spec for spec in params if spec.get("advanced")]
    _param_grid(basic, key_prefix, values)
    if advanced:
        with st.expander("Advanced settings"):
            _param_grid(advanced, key_prefix, values)
    return values


def _param_grid(params: Sequence[Mapping[str, Any]], key_prefix: str, values: dict[str, Any]) -> None:
    grid = st.columns(COLUMNS_PER_ROW)
    for i, spec in enumerate(params):
        with grid[i % COLUMNS_PER_ROW]:
            values[spec["name"]] = _param_widget(spec, f"{key_prefix}.{spec['name']}")


def seed_param_state(params: Sequence[Mapping[str, Any]], key_prefix: str, values: Mapping[str, Any]) -> None:
    """Put `values` ({name: value}, e.g. a stored run's settings) into the widgets' session state, so the next render
    of `param_widgets` shows them; names the schema does not know are ignored."""
    for spec in params:
        if spec["name"] not in values:
            continue
        value, key = values[spec["name"]], f"{key_prefix}.{spec['name']}"
        if spec.get("zero"):
            st.session_state[f"{key}.zero"] = value == 0
            value = spec["suggested"] if value == 0 else value
        if spec.get("type") == "int_list":
            value = ",".join(str(v) for v in value)
        elif spec.get("type") == "float":
            value = float(value)
        st.session_state[key] = value


def _param_widget(spec: Mapping[str, Any], key: str) -> Any:
    """One setting. Its value is seeded into session state (never passed as `value`), so prefilled state and the
    default cannot disagree."""
    label = escape_markdown(spec.get("label") or spec["name"].replace("_", " "))
    default, kind, about = spec.get("default"), spec.get("type"), spec.get("help")
    # The code name too, for the CLI's --set and the saved config.
    help_text = escape_markdown(f"{about or ''} (Setting: {spec['name']})".strip())
    if spec.get("zero"):
        zero_key = f"{key}.zero"
        st.session_state.setdefault(zero_key, default == 0)
        if st.checkbox(f"{label}: {escape_markdown(spec['zero'])}", key=zero_key, help=help_text):
            return 0
        default = spec["suggested"] if default == 0 else default
    if spec.get("choices"):
        choices = list(spec["choices"])
        st.session_state.setdefault(key, default if default in choices else choices[0])
        return st.selectbox(label, choices, key=key, help=help_text, format_func=_choice_label)
    if kind == "bool":
        st.session_state.setdefault(key, bool(default))
        return st.checkbox(label, key=key, help=help_text)
    if kind == "int":
        st.session_state.setdefault(key, int(default))
        low = _int(spec.get("min"))
        return st.number_input(label, value=None, min_value=1 if spec.get("zero") and low == 0 else low,
                               max_value=_int(spec.get("max")), step=1, key=key, help=help_text)
    if kind == "float":
        st.session_state.setdefault(key, float(default))
        return st.number_input(label, value=None, min_value=_float(spec.get("min")), max_value=_float(spec.get("max")),
                               format=_float_format(default), key=key, help=help_text)
    if kind and "list" in kind:
        st.session_state.setdefault(key, ",".join(str(v) for v in default or []))
        text = st.text_input(label, key=key, help=escape_markdown(f"{about or ''} Comma-separated, e.g. 256,256. "
                                                                  f"(Setting: {spec['name']})".strip()))
        return parse_list(text)
    st.session_state.setdefault(key, "" if default is None else str(default))
    return st.text_input(label, key=key, help=help_text, placeholder=spec.get("placeholder"))


def parse_list(text: str) -> list[int | float | str]:
    """'256, 256' -> [256, 256]; the engine validates the values and names what is wrong."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    return [_parse_scalar(item) for item in items]


def _parse_scalar(text: str) -> int | float | str:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _choice_label(value: Any) -> str:
    return "none" if value is None else str(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _float_format(default: Any) -> str:
    # Small defaults (a learning rate of 0.0003) need more than the two decimals Streamlit shows.
    return "%.6g" if isinstance(default, float) and 0 < abs(default) < 0.01 else "%.4f"


def typical_values(table: pd.DataFrame, columns: Sequence[str]) -> dict[str, Any]:
    """The median of numeric and date columns and the most frequent value of the others: a believable row."""
    row: dict[str, Any] = {}
    for name in columns:
        present = table[name].dropna()
        if present.empty:
            row[name] = None
        elif ptypes.is_bool_dtype(present):
            row[name] = bool(present.mode().iloc[0])
        elif ptypes.is_numeric_dtype(present):
            median = float(present.median())
            row[name] = int(round(median)) if ptypes.is_integer_dtype(present) else median
        elif ptypes.is_datetime64_any_dtype(present):  # the middle date: the most frequent is the first when all differ
            row[name] = present.sort_values().iloc[len(present) // 2]
        else:
            row[name] = present.mode().iloc[0]
    return row


def what_if_inputs(table: pd.DataFrame, columns: Sequence[str], key_prefix: str) -> dict[str, Any]:
    """One widget per training column, prefilled with a typical value; returns the row as a dict."""
    typical = typical_values(table, columns)
    row: dict[str, Any] = {}
    grid = st.columns(COLUMNS_PER_ROW)
    for i, name in enumerate(columns):
        series, key, label = table[name], f"{key_prefix}.{name}", escape_markdown(name)
        with grid[i % COLUMNS_PER_ROW]:
            if ptypes.is_bool_dtype(series):
                row[name] = st.checkbox(label, value=bool(typical[name]), key=key)
            elif ptypes.is_numeric_dtype(series):
                is_int = ptypes.is_integer_dtype(series)
                row[name] = st.number_input(label, value=typical[name], step=1 if is_int else None, key=key,
                                            format=None if is_int else "%.4g")
            elif ptypes.is_datetime64_any_dtype(series):
                row[name] = st.text_input(label, value=str(typical[name] or ""), key=key)
            else:
                options = series.dropna().astype(str).value_counts().index[:200].tolist()
                row[name] = st.selectbox(label, options, index=0 if options else None, key=key,
                                         accept_new_options=True)
    return row


def remembered_selectbox(label: str, options: Sequence[Any], memory_key: str, **kwargs: Any) -> Any:
    """A selectbox whose choice survives page switches (widget state does not; plain session state does)."""
    # The widget keeps its key while only the user changes it (an unkeyed widget whose index follows the memory gets
    # a new identity at each change, and the change after it is dropped). When the memory was changed elsewhere (an
    # upload, another page), a fresh key shows it: the browser may still send the old widget's value, and under the
    # same key that stale value would read as the user's choice and undo the change.
    current = st.session_state.get(memory_key)
    current = current if current in options else options[0]
    shown = st.session_state.setdefault(f"{memory_key}.shown", {"generation": 0, "value": current})
    if shown["value"] != current:
        shown["generation"] += 1
    widget_key = f"{memory_key}.widget.{shown['generation']}"
    if st.session_state.get(widget_key) not in options:
        st.session_state[widget_key] = current
    choice = st.selectbox(escape_markdown(label), options, key=widget_key, **kwargs)
    shown["value"] = choice
    st.session_state[memory_key] = choice
    return choice


def sample_picker(store, label: str, button_label: str, **button_kwargs: Any):
    """A bundled sample to add; returns the AddedDataset once added (and remembers it as the dataset)."""
    from workbench import datasets
    from workbench.errors import UserError

    samples = datasets.sample_names()
    sample = st.selectbox(escape_markdown(label), list(samples), format_func=lambda name: f"{name} — {samples[name]}")
    if not st.button(escape_markdown(button_label), **button_kwargs):
        return None
    try:
        added = datasets.add_sample(store, sample)
    except UserError as exc:
        st.error(escape_markdown(exc))
        return None
    st.session_state["dataset_id"] = added.dataset.id
    return added


def sweep_space_editor(model: str, params: Sequence[Mapping[str, Any]], values: Mapping[str, Any],
                       key: str) -> dict[str, str | None]:
    """Which settings a search tries, and over what: a table of every hyperparameter with the default range or
    choices (workbench.sweeps), each editable and each switchable off. Returns {name: range text as `--space` takes
    it, or None for a setting kept at its value in `values` (or its default)}."""
    from workbench.sweeps import SearchSpace

    space = SearchSpace.for_model(model)
    labels = {spec["name"]: spec["label"] for spec in params}
    defaults = {spec["name"]: spec["default"] for spec in params}
    frame = pd.DataFrame({
        "Setting": [labels[d.name] for d in space.dimensions],
        "Search": [d.searched for d in space.dimensions],
        "Range or choices": [d.as_text() if d.searched else _as_text(values.get(d.name, defaults[d.name]))
                             for d in space.dimensions],
    })
    edited = st.data_editor(
        frame, key=key, hide_index=True, width="stretch", disabled=["Setting"], num_rows="fixed",
        column_config={
            "Search": st.column_config.CheckboxColumn(help="Off: the setting keeps its value from the form above"),
            "Range or choices": st.column_config.TextColumn(
                help="LOW:HIGH, or LOW:HIGH:log to search on a log scale (learning rates); choices a,b,c; lists of "
                     "numbers separated by / (128,128/256,256)")})
    return {d.name: (str(text) if searched else None)
            for d, searched, text in zip(space.dimensions, edited["Search"], edited["Range or choices"], strict=True)}


def _as_text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)
