"""The ONNX export control shared by the Run and Predict pages: built on click (it converts the model and checks it on
test rows, a few seconds), then offered as a download; a refusal is one sentence."""

from __future__ import annotations

import streamlit as st

from ui.text import escape_markdown
from workbench.errors import UserError
from workbench.onnx_export import bundle_check, export_onnx


def onnx_export(store, run_id: str) -> None:
    """A button that builds the run's ONNX bundle, then the download button for it (kept for the session)."""
    key = f"onnx_export.{run_id}"
    if key not in st.session_state:
        slot = st.empty()  # the button, gone once it is clicked
        if not slot.button("Build a portable ONNX bundle", key=f"{key}.build",
                           help="model.onnx with a predict.py and serve.py that need only onnxruntime and numpy; "
                                "checked against this workbench's predictions on test rows before it is offered"):
            return
        slot.empty()
        with st.spinner("Converting the model and checking it on test rows…"):
            try:
                st.session_state[key] = export_onnx(store, run_id)
            except UserError as exc:
                st.session_state[key] = str(exc)
    built = st.session_state[key]
    if isinstance(built, str):  # the refusal, in one sentence
        st.warning(escape_markdown(built))
        return
    st.download_button("Download the ONNX bundle (zip)", built, file_name=f"workbench-run-{run_id}-onnx.zip",
                       mime="application/zip", on_click="ignore", key=f"{key}.download")
    st.caption(escape_markdown(bundle_check(built).sentence()))
