"""Links from strangers: whatever a URL's query string holds, ``core.app.share`` gives a valid value
(the default plus a one-line notice when it had to ignore or change something) and never
raises; and every page opens cleanly with hostile query parameters."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.app import share
from core.store.store import RunStore
from tests.app.harness import HOSTILE_QUERY, PAGES, assert_clean, open_page, page_text

ROOT = Path(__file__).resolve().parents[2]
RUN_IDS = ("convnet-digits-1124-205501-3fa2", "dcgan-digits-1124-205502-0b1c")

# The kinds of parameters the pages bind (pages/*.py), with bounds and run-time choices.
PARAMS = (
    share.Param("seed", int, 0, minimum=0, maximum=2**31 - 1),
    share.Param("n", int, 64, minimum=1, maximum=64),
    share.Param("page", int, 1, minimum=1, maximum=3),
    share.Param("image", int, 0),  # unbounded
    share.Param("epoch", int).with_choices([1, 2, 5]),
    share.Param("label", int, None, optional=True).with_choices(range(10)),
    share.Param("truncation", float, 0.0, minimum=0.0, maximum=2.0),
    share.Param("smooth", float, 0.0, minimum=0.0, maximum=0.95),
    share.Param("source", str, "test", choices=("test", "upload", "draw")),
    share.Param("run", str).with_choices(RUN_IDS),
    share.Param("run_none", str).with_choices([]),  # a store with no runs yet
    share.Param("cls", str, "all").with_choices(["all", "0", "1"], default="all", pinned=False),
    share.Param("q", str, ""),
    share.Param("live", bool, True),
    share.Param("status", list, [], choices=("running", "completed", "failed")),
    share.Param("compare", list, [], choices=RUN_IDS),
)

HOSTILE = (
    "", " ", "-1", "0", "-0", "1e309", "-1e309", "nan", "NaN", "inf", "-Infinity", "1e-400", "0x10", "1_000",
    "9" * 400, "9" * 5000, str(2**63), str(-(2**63) - 1), str(2**53 + 1), "12.0", "12.5", "١٢", "¹²", "true",
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "/etc/passwd", "C:\\Windows\\win.ini", "run;rm -rf /",
    "' OR '1'='1", "1; DROP TABLE runs; --", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
    "{{7*7}}", "${jndi:ldap://x}", "\x00", "\u202e", "\ud800", "a\nb", "\r\n", "🤖" * 100, ",,,", "a," * 1000,
    RUN_IDS[0] + "x", RUN_IDS[0].upper(), RUN_IDS[0][:10],
)

raw_values = st.one_of(
    st.none(),
    st.sampled_from(HOSTILE),
    st.text(max_size=60),
    st.text(alphabet="0123456789.eE+-_ninfaNI,", max_size=30),
    st.integers().map(str),
    st.floats().map(repr),
    st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20)), max_size=4),
)


def _valid(param: share.Param, value) -> bool:
    """What a page may rely on: the right type, in bounds, one of the choices."""
    if value is None:
        return param.optional or param.default is None
    if param.kind is list:
        return (isinstance(value, list) and len(value) <= share.MAX_LIST_ITEMS
                and all(isinstance(item, str) for item in value)
                and (param.choices is None or all(item in param.choices for item in value)))
    if param.kind is bool:
        return isinstance(value, bool)
    if param.kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        return False
    if param.kind is float and (not isinstance(value, float) or not math.isfinite(value)):
        return False
    if param.kind is str and not isinstance(value, str):
        return False
    if param.minimum is not None and value < param.minimum:
        return False
    if param.maximum is not None and value > param.maximum:
        return False
    return param.choices is None or value in param.choices


def _used_as_given(param: share.Param, text: str, value) -> bool:
    """Whether ``value`` is exactly what ``text`` says (so no notice was owed)."""
    try:
        if param.kind is int:  # exactly: a link's seed 10000000000000001 is not 10**16
            return Decimal(text) == value
        if param.kind is float:  # to float precision: "0.1" is the float 0.1
            return float(text) == value
    except (InvalidOperation, ValueError):
        return False
    if param.kind is list:
        return value == list(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
    if param.kind is bool:
        return text.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off")
    return value == text


@settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(param=st.sampled_from(PARAMS), raw=raw_values)
@example(param=PARAMS[0], raw="1e309")
@example(param=PARAMS[9], raw="../../etc/passwd")
def test_any_query_value_gives_a_valid_value_and_at_most_a_one_line_notice(param, raw):
    value, notice = share.parse_value(param, raw)
    assert _valid(param, value), (param.name, raw, value)
    if notice is not None:
        assert isinstance(notice, str) and "\n" not in notice and "\r" not in notice, notice
        assert len(notice) < 300 and param.name in notice, notice


@settings(max_examples=600, deadline=None, database=None)
@given(param=st.sampled_from(PARAMS), raw=st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40),
                                                  st.integers().map(str), st.floats().map(repr)))
def test_a_value_that_is_not_used_as_given_always_comes_with_a_notice(param, raw):
    value, notice = share.parse_value(param, raw)
    text = raw.strip()
    if notice is None and text and len(text) <= share.MAX_VALUE_CHARS:
        assert _used_as_given(param, text, value), f"{param.name}={raw!r} silently became {value!r}"


@pytest.mark.parametrize("raw", [str(2**53 + 1), str(10**17 + 3), "-10000000000000001",
                                 "123456789012345678901234567890"])
def test_huge_whole_numbers_are_kept_exactly_or_refused_with_a_notice(raw):
    value, notice = share.parse_value(share.Param("image", int, 0), raw)
    assert value == int(raw) or (value == 0 and notice), f"{raw} became {value} without a notice"


@pytest.mark.parametrize("raw", ["1e-400", "1.0000000000000001", "0.99999999999999999"])
def test_numbers_that_are_not_whole_are_refused_with_a_notice(raw):
    value, notice = share.parse_value(share.Param("seed", int, 7, minimum=0, maximum=2**31 - 1), raw)
    assert (value, bool(notice)) == (7, True), f"seed={raw} became {value} without a notice"


@settings(max_examples=200, deadline=None, database=None)
@given(query=st.dictionaries(
    st.one_of(st.sampled_from([param.name for param in PARAMS]), st.text(max_size=12)),  # known and unknown keys
    st.one_of(st.sampled_from(HOSTILE), st.text(max_size=30), st.lists(st.text(max_size=10), max_size=3)),
    max_size=20))
def test_a_whole_hostile_query_parses_to_a_value_for_every_parameter(query):
    values, notices = share.parse(query, PARAMS)
    assert set(values) == {param.name for param in PARAMS}
    assert all(_valid(param, values[param.name]) for param in PARAMS)
    assert all(isinstance(notice, str) and "\n" not in notice for notice in notices)


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data())
def test_a_share_link_reopens_the_same_values(data):
    param = data.draw(st.sampled_from([p for p in PARAMS if p.choices is None or len(p.choices)]))
    if param.kind is list:
        value = data.draw(st.lists(st.sampled_from(list(param.choices)), unique=True, max_size=3))
    elif param.choices is not None:
        value = data.draw(st.sampled_from(list(param.choices)))
    elif param.kind is int:
        value = data.draw(st.integers(int(param.minimum or 0), int(param.maximum or 2**40)))
    elif param.kind is float:
        value = data.draw(st.floats(param.minimum, param.maximum, allow_nan=False))
    elif param.kind is bool:
        value = data.draw(st.booleans())
    else:
        value = data.draw(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
                          .map(str.strip))
    encoded = share.to_query({param.name: value}).get(param.name)
    reopened, notice = share.parse_value(param, encoded)
    assert notice is None, notice
    if param.kind is float:
        assert reopened == pytest.approx(value, abs=1e-6)
    elif encoded is None:  # left out of the link: the page opens with the default
        assert reopened == param.default or (param.kind is list and reopened == [] == value)
    else:
        assert reopened == value


# ---- the pages, with a hostile link --------------------------------------------------------------


# Hostile parameters each page binds on a store without checkpoints (sample and classify stop
# early there: no run to sample from or classify with).
BOUND = {"datasets": ("dataset", "page", "cls"), "runs": ("run", "status", "compare"), "train": ("model",)}


@pytest.mark.xdist_group("hardening_pages")
@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_a_hostile_link_cleanly(runs_home, page):
    home, ids = runs_home
    at = open_page(page, HOSTILE_QUERY)
    assert_clean(at)
    text = page_text(at)
    assert "root:x:0:0" not in text  # npz:/etc/passwd and ../../etc/passwd were never read
    # The parameters this page binds now hold valid values, each replaced with a notice.
    notices = " ".join(element.value for element in at.warning)
    for name in BOUND.get(page, ()):
        assert at.query_params.get(name) != HOSTILE_QUERY[name], (name, at.query_params.get(name))
        assert f"{name}=" in notices, (name, notices)
    assert RunStore(home).list_runs(status="running")[0]["run_id"] == ids["running"]


@pytest.mark.xdist_group("hardening_pages")
@pytest.mark.parametrize("page", PAGES)
def test_every_page_opens_a_hostile_link_on_an_empty_store(tmp_path, monkeypatch, page):
    monkeypatch.setenv("CONVGAN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CONVGAN_DEMO", raising=False)
    at = open_page(page, HOSTILE_QUERY)
    assert_clean(at)
    assert RunStore(tmp_path / "home").list_runs() == []


@pytest.mark.xdist_group("hardening_runs")
@pytest.mark.parametrize("page", ["sample", "classify", "runs"])
def test_pages_with_checkpoints_open_a_hostile_link_cleanly(checkpoint_home, page):
    home, ids = checkpoint_home
    at = open_page(page, HOSTILE_QUERY)
    assert_clean(at)
    notices = " ".join(element.value for element in at.warning)
    assert "run=" in notices  # the traversal run id was refused, the newest run shown instead
    if page == "sample":
        assert at.number_input(key="sample.n").value <= 256 and "n=" in notices
