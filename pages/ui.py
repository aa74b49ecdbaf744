"""Streamlit helpers shared by the pages: the store, cached loaders, error display, demo banner,
and views whose controls live in the URL (``st.query_params``) so a copied link reopens them.

Not a page itself (``app.py`` lists the pages). Logic without Streamlit lives in
``core/app/`` (one ``*_view.py`` per page, ``run_actions.py``, ``demo_limits.py``, ``share.py``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

import core  # noqa: F401 - selects the JAX backend before anything imports keras
from core.app import datasets_view, demo_limits, runs_view, share
from core.common import devices as device_inventory
from core.common.devices import list_devices
from core.common.errors import UserError
from core.data import datasets
from core.evaluation import sampling
from core.runs import jobs
from core.store import checkpoints
from core.store.store import RunStore, default_home

_log = logging.getLogger("convgan.app")


# ---- store, models, datasets ---------------------------------------------------------------------


@st.cache_resource(max_entries=4)
def _store(home: str) -> RunStore:
    return RunStore(home)


def store() -> RunStore:
    """The run store of ``$CONVGAN_HOME`` (one object per store folder)."""
    return _store(str(default_home()))


@st.cache_resource(max_entries=6, show_spinner="Loading the model...")
def _load_model(path: str, mtime: float):
    return checkpoints.load_model(path)


def load_model(path: Path):
    """A checkpoint's Keras model, shared by all sessions (keyed by path and modification time).

    Treat it as read-only: it is not copied per session.
    """
    path = Path(path)
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return _load_model(str(path), mtime)


def load_dataset(spec: str, image_size: int | None = None):
    """A dataset (``core.data.datasets`` caches loaded datasets in-process, read-only, so no
    Streamlit cache here: a rerun gets the same arrays without a copy)."""
    with st.spinner("Loading the dataset..."):
        return datasets.load_dataset(spec, image_size=image_size)


@st.cache_data(ttl=60, max_entries=4, show_spinner=False)
def list_datasets() -> list[Any]:
    return datasets.list_datasets()


@st.cache_resource(show_spinner=False)
def devices() -> list[dict[str, Any]]:
    return list_devices()


def gpu_ids() -> list[str]:
    """The GPUs ConvGAN may hand to jobs (``$CONVGAN_GPUS``, else every GPU); a bad
    ``CONVGAN_GPUS`` shows one line and offers none."""
    with guard():
        return device_inventory.gpu_ids()
    return []


def dataset_specs() -> list[str]:
    """Datasets to choose from: the built-in ones, then uploads kept in the store."""
    return [info.name for info in list_datasets()] + datasets_view.uploaded_datasets(store())


# ---- errors and modes ------------------------------------------------------------------------------


@contextlib.contextmanager
def guard(*, stop: bool = False) -> Iterator[None]:
    """Show a core error as one line (``st.error``) instead of a traceback.

    Args:
        stop: end the page after the error (for errors the rest of the page depends on).
    """
    try:
        yield
    except UserError as err:
        st.error(str(err).splitlines()[0] if str(err) else type(err).__name__, icon=":material/error:")
        if stop:
            _stop()
    except Exception as err:  # noqa: BLE001 - a user never sees a traceback; the log keeps it
        _log.exception("unexpected error in a page")
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        st.error(
            f"unexpected error: {type(err).__name__}{': ' + first if first else ''} (details in the server log)",
            icon=":material/error:",
        )
        if stop:
            _stop()


def _stop() -> None:
    """End the page early, keeping the share link of the view so far (a link to a broken view
    is still worth sharing with whoever can fix it)."""
    view = st.session_state.get(_VIEW_KEY)
    if view is not None:
        view.publish()
    st.stop()


def demo() -> bool:
    return demo_limits.demo_mode()


# app.py sets this in every run before it runs a page through st.navigation.
ROUTED_KEY = "_convgan_routed"
_VIEW_KEY = "_convgan_view"  # the View of the page being run, for guard(stop=True)


def begin_run() -> None:
    """Called by app.py at the start of every run, before the page."""
    st.session_state[ROUTED_KEY] = True
    st.session_state.pop(_VIEW_KEY, None)
    if _served():
        _queue_watcher(str(default_home()))


def _served() -> bool:
    """True under ``streamlit run``; AppTest installs a mock Runtime, and no watcher there
    (it would outlive the test and start queued runs of the test's store)."""
    return st.runtime.exists() and type(st.runtime.get_instance()) is st.runtime.Runtime


@st.cache_resource(show_spinner=False)
def _queue_watcher(home: str):
    """Keep the job queue moving while this server lives (one Dispatcher per store)."""
    return jobs.watch(_store(home))


def _ensure_routed() -> None:
    """Re-run through app.py when Streamlit ran a page file directly.

    Streamlit treats a ``pages/`` folder next to the main script as a legacy multipage app
    until some session has run the main script's ``st.navigation``: the first visitor after a
    start who opens a link to a page (``/sample?seed=3``) would get that file alone, without
    app.py's page config and navigation. Turning the legacy mode off and re-running gives that
    visitor app.py with the same URL, so the link opens as shared.
    """
    if st.session_state.get(ROUTED_KEY):
        return
    PagesManager.uses_pages_directory = False
    st.session_state[ROUTED_KEY] = True  # one re-run at most, whatever happens next
    st.rerun()


def header(title: str) -> None:
    """The page title, and in demo mode a banner saying what is turned off."""
    _ensure_routed()
    st.title(title)
    if demo():
        st.info(demo_limits.demo_notice(), icon=":material/visibility:")


def image(array, caption: str | None = None, width: int | str = "content") -> None:
    """Show a uint8 (H, W, C) array as a PNG (lossless, so the same pixels give the same bytes)."""
    st.image(array, caption=caption, width=width, output_format="PNG", clamp=True)


# ---- views in the URL ------------------------------------------------------------------------------


class View:
    """The controls of one page that define what it shows, kept in ``st.query_params``.

    On a page's first run in a session each control starts from the URL (validated by
    :mod:`core.app.share`, with a notice for a bad value); afterwards the widgets own the value and
    :meth:`publish` writes the current values back into the URL.

    Usage::

        view = ui.View("sample")
        seed_key = view.bind(share.Param("seed", int, 0, minimum=0))
        st.number_input("Seed", key=seed_key)
        ...
        view.publish()
    """

    def __init__(self, page: str):
        self.page = page
        self.params: dict[str, share.Param] = {}
        self.notices: list[str] = []
        self._query = {name: st.query_params.get_all(name) for name in st.query_params}
        # Link values replaced by a fallback, kept across reruns until the user sets the control.
        self.fallbacks = share.Fallbacks(st.session_state.setdefault(f"_convgan_fallbacks.{page}", {}))
        self._holds: dict[str, str] = {}  # pending name -> the write action it holds back
        self._notice_area = st.container()
        self._published = False
        st.session_state[_VIEW_KEY] = self

    def key(self, name: str) -> str:
        return f"{self.page}.{name}"

    def bind(self, param: share.Param) -> str:
        """Register a control; returns the widget key to create it with (no ``value=``/``index=``)."""
        key = self.key(param.name)
        self.params[param.name] = param
        if key not in st.session_state:
            value, notice = share.parse_value(param, self._query.get(param.name))
            if notice:
                self.notices.append(notice)
                self.fallbacks.record(param.name, value, notice)
            else:
                self.fallbacks.confirm(param.name)
            st.session_state[key] = value
            return key
        self.fallbacks.observe(param.name, st.session_state[key])  # a value the user set confirms it
        if not _valid(param, st.session_state[key]):
            # Choices changed under the widget (a run was deleted, another run has other epochs).
            st.session_state[key] = param.default
            self.fallbacks.replace(param.name, param.default)
        return key

    def value(self, name: str) -> Any:
        return st.session_state.get(self.key(name))

    def set(self, name: str, value: Any, *, chosen: bool = True) -> None:
        """Change a control's value (before its widget is created in this run).

        Args:
            chosen: the user's own choice (e.g. the dataset they just uploaded); False for the
                page's (new defaults), which leaves a link's rejected value pending.
        """
        st.session_state[self.key(name)] = value
        if chosen:
            self.fallbacks.confirm(name)
        else:
            self.fallbacks.replace(name, value)

    def unconfirmed(self, action: str, names: list[str] | None = None) -> list[str]:
        """The controls (of ``names``, default: all bound in this run) still holding a fallback
        for a link value that was rejected; ``action`` (e.g. "Launch") must stay disabled
        while any is left. Their notices then stay on the page, naming what to pick, with a
        button to keep the fallback."""
        bound = [name for name in (names or self.params) if name in self.params]
        pending = list(self.fallbacks.pending(bound))
        for name in pending:
            self._holds.setdefault(name, action)
        return pending

    def values(self) -> dict[str, Any]:
        return {name: self.value(name) for name in self.params}

    def run_and_checkpoint(self, label: str, runs: list[dict[str, Any]], store: RunStore, columns):
        """A run picker (``?run=``) and its checkpoint-epoch picker (``?epoch=``, the last by
        default) in two of the page's columns; returns ``(run, epoch)``, epoch None when the
        run has no per-epoch checkpoint."""
        by_id = {run["run_id"]: run for run in runs}
        run_id = columns[0].selectbox(
            label, list(by_id), key=self.bind(share.Param("run", str).with_choices(by_id)),
            format_func=lambda r: f"{r} ({by_id[r]['status']})",
        )
        epochs = runs_view.checkpoint_epochs(store, run_id)
        if not epochs:
            return by_id[run_id], None
        epoch = columns[1].selectbox(
            "Checkpoint epoch", epochs,
            key=self.bind(share.Param("epoch", int).with_choices(epochs, default=epochs[-1])),
        )
        return by_id[run_id], epoch

    def publish(self) -> None:
        """Write the view into the URL, show the notices, and put a share link in the sidebar."""
        if self._published:
            return
        self._published = True
        query = share.to_query(self.values(), self.params)
        if query != {name: st.query_params.get(name) for name in st.query_params}:
            st.query_params.from_dict(query)
        held = self.fallbacks.pending(self._holds)
        with self._notice_area:
            for notice in self.notices:
                if notice not in held.values():
                    st.warning(notice, icon=":material/link_off:")
            for name, notice in held.items():
                fallback = share.encode_value(self.fallbacks.value(name))
                st.warning(
                    f"{notice}. {self._holds[name]} stays off until you pick a value for {name} "
                    f"(or keep {fallback}).",
                    icon=":material/link_off:",
                )
                st.button(
                    f"Keep {fallback}", key=f"{self.page}.keep.{name}", on_click=_keep, args=(self.page, name)
                )
        with st.sidebar:
            st.caption("Share this view")
            st.code(self.url(), language=None, wrap_lines=True)

    def url(self) -> str:
        base = None
        with contextlib.suppress(Exception):
            base = st.context.url
        return share.share_url(
            base, self.values(), self.params, fallback=f"http://localhost:8501/{self.page}"
        )


def _keep(page: str, name: str) -> None:
    share.Fallbacks(st.session_state.get(f"_convgan_fallbacks.{page}", {})).confirm(name)


def _valid(param: share.Param, value: Any) -> bool:
    if value is None:
        return param.optional or param.default is None
    if param.kind is list:
        return isinstance(value, list) and (param.choices is None or all(v in param.choices for v in value))
    if param.minimum is not None and value < param.minimum:
        return False
    if param.maximum is not None and value > param.maximum:
        return False
    return param.choices is None or value in param.choices


if __name__ == "__main__":  # a /ui link on a fresh server ran this helper module as a page
    _ensure_routed()


@st.cache_resource(max_entries=6, show_spinner="Loading the generator...")
def _load_gan(path: str, mtime: float):
    return sampling.load_gan(path)


def load_gan(path: str | Path):
    """A GAN checkpoint ready for ``core.evaluation.sampling`` (shared, keyed by path and modification time)."""
    path = Path(path)
    return _load_gan(str(path), path.stat().st_mtime if path.exists() else 0.0)
