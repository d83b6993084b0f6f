"""Entry point: `streamlit run app.py`. Page setup and navigation only; pages live in pages/."""

import streamlit as st

from ui.auth import require_access
from ui.frame import mark_framed, resume_page
from ui.guard import guarded
from ui.resources import apply_upload_limit

st.set_page_config(page_title="Workbench", page_icon="🧪", layout="wide")
mark_framed()
apply_upload_limit()
require_access()

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/data.py", title="Data", icon=":material/table_chart:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/runs.py", title="Runs & Compare", icon=":material/leaderboard:"),
        st.Page("pages/run.py", title="Run", icon=":material/article:"),
        st.Page("pages/sweeps.py", title="Sweeps", icon=":material/travel_explore:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/online_prediction:"),
        st.Page("pages/deploy.py", title="Deploy", icon=":material/rocket_launch:"),
        st.Page("pages/monitor.py", title="Monitor", icon=":material/monitoring:"),
    ]
)
resume_page()
with guarded():  # an unexpected error on any page: one sentence and a reference id, never a traceback
    navigation.run()
