import streamlit as st

st.title("Workbench")
st.write("Upload a CSV, train models on it, compare them and predict with the best one.")
