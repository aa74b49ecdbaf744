"""core.app.share: query parameters parse to valid values with a notice, never an exception."""

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.app import share
from core.app.share import Param

SEED = Param("seed", int, 0, minimum=0, maximum=2**31 - 1)
N = Param("n", int, 16, minimum=1, maximum=64)
TRUNCATION = Param("truncation", float, 0.0, minimum=0.0, maximum=3.0)
RUN = Param("run", str, "b").with_choices(["a", "b", "c"])
LABEL = Param("label", str, None, optional=True).with_choices(["0", "1"], default=None)
COMPARE = Param("compare", list, [], choices=["a", "b", "c"])
FLAG = Param("flag", bool, False)
ALL = (SEED, N, TRUNCATION, RUN, LABEL, COMPARE, FLAG)


def test_good_values_are_used_without_notice():
    values, notices = share.parse(
        {
            "seed": "12",
            "n": "8",
            "truncation": "0.5",
            "run": "c",
            "label": "1",
            "compare": "a,c",
            "flag": "true",
        },
        ALL,
    )
    assert values == {
        "seed": 12,
        "n": 8,
        "truncation": 0.5,
        "run": "c",
        "label": "1",
        "compare": ["a", "c"],
        "flag": True,
    }
    assert notices == []


def test_missing_values_give_defaults_silently():
    values, notices = share.parse({}, ALL)
    assert values == {
        "seed": 0,
        "n": 16,
        "truncation": 0.0,
        "run": "b",
        "label": None,
        "compare": [],
        "flag": False,
    }
    assert notices == []


@pytest.mark.parametrize(
    ("param", "raw", "expected", "fragment"),
    [
        (SEED, "abc", 0, "expected a whole number"),
        (SEED, "1.5", 0, "expected a whole number"),
        (SEED, "-3", 0, "below the minimum 0"),
        (N, "1000", 64, "above the maximum 64"),
        (TRUNCATION, "nan", 0.0, "finite"),
        (TRUNCATION, "inf", 0.0, "finite"),
        (RUN, "deleted-run", "b", "not one of the choices"),
        (FLAG, "maybe", False, "true or false"),
        (SEED, "9" * 600, 0, "too long"),
    ],
)
def test_bad_values_fall_back_with_a_notice(param, raw, expected, fragment):
    value, notice = share.parse_value(param, raw)
    assert value == expected
    assert notice is not None and fragment in notice and param.name in notice
    assert "\n" not in notice


def test_unknown_list_items_are_dropped_with_a_notice():
    value, notice = share.parse_value(COMPARE, "a,zzz,a,c")
    assert value == ["a", "c"]
    assert "zzz" in notice


def test_repeated_keys_use_the_last_value():
    assert share.parse_value(SEED, ["1", "2"]) == (2, None)


def test_share_url_round_trips_through_parse():
    values = {
        "run": "c",
        "seed": 7,
        "n": 9,
        "truncation": 0.7,
        "label": None,
        "compare": ["a", "b"],
        "flag": True,
    }
    url = share.share_url("http://example.org:8501/sample?old=1", values)
    parts = urlsplit(url)
    assert parts.path == "/sample" and "old" not in parts.query
    query = {key: value for key, value in parse_qs(parts.query).items()}
    parsed, notices = share.parse(query, ALL)
    assert notices == []
    assert {k: parsed[k] for k in values} == values


def test_share_url_without_base_uses_the_fallback():
    assert (
        share.share_url(None, {"seed": 1}, fallback="http://localhost:8501/x")
        == "http://localhost:8501/x?seed=1"
    )


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([p.name for p in ALL] + ["other"]),
        st.one_of(st.text(max_size=80), st.lists(st.text(max_size=20), max_size=3)),
    )
)
def test_any_query_parses_to_valid_values(query):
    values, notices = share.parse(query, ALL)
    assert 0 <= values["seed"] <= 2**31 - 1 and isinstance(values["seed"], int)
    assert 1 <= values["n"] <= 64
    assert 0.0 <= values["truncation"] <= 3.0
    assert values["run"] in ("a", "b", "c")
    assert values["label"] in (None, "0", "1")
    assert set(values["compare"]) <= {"a", "b", "c"}
    assert isinstance(values["flag"], bool)
    assert all(isinstance(notice, str) and "\n" not in notice for notice in notices)


def test_links_leave_out_static_defaults_but_keep_pinned_ones():
    params = {p.name: p for p in ALL}
    query = share.to_query({"seed": 0, "n": 8, "run": "b", "flag": False}, params)
    assert query == {"n": "8", "run": "b"}  # run is pinned: "the newest run" changes over time
