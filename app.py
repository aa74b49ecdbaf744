"""ConvGAN Studio dashboard: ``streamlit run app.py``.

A frame around the pages in ``pages/``: page config, the navigation, then the page.
Training never runs in this process; pages launch background jobs (``core.runs.jobs``).

The frame renders before the slow imports (JAX and Keras, seconds on a fresh server), and the
navigation is drawn here with ``st.page_link``: ``.streamlit/config.toml`` turns Streamlit's own
menu off (``client.showSidebarNavigation = false``), as it would otherwise list the raw file
names of ``pages/`` until this script's ``st.navigation`` runs.
"""

import contextlib
import sys

import streamlit as st

st.set_page_config(page_title="ConvGAN Studio", page_icon=":material/blur_on:", layout="wide")

HOME = {"title": "Home", "icon": ":material/home:"}
PAGES = [
    st.Page("pages/home.py", **HOME, url_path="start", default=True),  # served at /
    st.Page("pages/datasets.py", title="Datasets", icon=":material/photo_library:", url_path="datasets"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/runs.py", title="Runs", icon=":material/monitoring:", url_path="runs"),
    st.Page("pages/sample.py", title="Sample", icon=":material/auto_awesome:", url_path="sample"),
    st.Page("pages/classify.py", title="Classify", icon=":material/category:", url_path="classify"),
    st.Page("pages/restore.py", title="Restore", icon=":material/healing:", url_path="restore"),
]
# Streamlit serves the default page at / only; this hidden twin serves Home at /home too.
HOME_ALIAS = st.Page("pages/home.py", **HOME, url_path="home", visibility="hidden")

page = st.navigation([*PAGES, HOME_ALIAS])
with st.sidebar:
    for entry in PAGES:
        st.page_link(entry)

cold = "pages.ui" not in sys.modules  # the first run after a start: seconds of imports
with st.spinner("Starting ConvGAN Studio: loading JAX and Keras...") if cold else contextlib.nullcontext():
    import core  # noqa: F401 - selects the JAX backend before anything imports keras
    from pages import ui

ui.begin_run()
page.run()
