"""ConvGAN Studio dashboard: ``streamlit run app.py``.

A frame around the pages in ``pages/``: page config and the navigation.
Training never runs in this process; pages launch background jobs (``core.jobs``).
"""

import streamlit as st

import core  # noqa: F401 - selects the JAX backend before anything imports keras
from pages import ui

st.set_page_config(page_title="ConvGAN Studio", page_icon=":material/blur_on:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
    st.Page("pages/datasets.py", title="Datasets", icon=":material/photo_library:", url_path="datasets"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/runs.py", title="Runs", icon=":material/monitoring:", url_path="runs"),
    st.Page("pages/sample.py", title="Sample", icon=":material/auto_awesome:", url_path="sample"),
    st.Page("pages/classify.py", title="Classify", icon=":material/category:", url_path="classify"),
]

page = st.navigation(PAGES)
ui.begin_run()
page.run()
