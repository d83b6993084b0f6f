"""Entry point: `streamlit run app.py`. Page setup and navigation only; pages live in pages/."""

import streamlit as st

st.set_page_config(page_title="Workbench", page_icon="🧪", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    ]
)
navigation.run()
