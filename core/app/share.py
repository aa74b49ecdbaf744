"""Views in URLs: typed query parameters with defaults, validation notices and share links.

A page (or a notebook) describes each control that defines its view as a :class:`Param`;
:func:`parse_value` turns what a URL carried into a valid value, or the default plus a notice
saying why. Nothing here raises on bad input: a stale or hand-edited link always opens.

Example::

    seed = Param("seed", int, default=0, minimum=0, maximum=2**31 - 1)
    value, notice = parse_value(seed, ["12"])          # (12, None)
    value, notice = parse_value(seed, ["twelve"])      # (0, "ignored seed='twelve' ...")
    share_url("http://host/sample", {"run": "abc", "seed": 12})  # 'http://host/sample?run=abc&seed=12'
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

# Values longer than this are not parsed at all (a URL is no place for a novel).
MAX_VALUE_CHARS = 500
# Whole numbers with more digits than this are refused before conversion (no 10**100000 ints).
MAX_INT_DIGITS = 30
# A list parameter (e.g. runs to compare) keeps at most this many items.
MAX_LIST_ITEMS = 20

_KINDS = (int, float, str, bool, list)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclasses.dataclass(frozen=True)
class Param:
    """One view-defining control as it appears in a URL.

    Attributes:
        name: the query parameter name (``seed``, ``run``, ...).
        kind: ``int``, ``float``, ``str``, ``bool`` or ``list`` (comma-separated strings).
        default: the value used when the URL has none or a bad one. ``None`` is allowed
            (meaning "not set", e.g. no class for an unconditional GAN).
        choices: allowed values (for ``list``: allowed items); ``None`` = anything of the kind.
        minimum: smallest allowed number; larger values in a URL are clamped, with a notice.
        maximum: largest allowed number.
        optional: whether an empty value (``?label=``) means ``None``.
        pinned: keep the value in links even when it is the default (set by
            :meth:`with_choices`: a default such as "the newest run" changes over time).
    """

    name: str
    kind: type = str
    default: Any = None
    choices: Sequence[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    pinned: bool = False

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"Param {self.name}: kind must be one of int, float, str, bool, list")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"Param name {self.name!r} must be lower-case letters, digits and _")

    def with_choices(self, choices: Iterable[Any], default: Any = None, *, pinned: bool = True) -> Param:
        """The same parameter with choices known only at run time (runs, epochs, classes).

        Without ``default``, the old default stays if it is a choice, else the first choice is
        the default (``None`` for an optional parameter). The result is pinned (kept in links
        even at its default, which may change as runs come and go) unless ``pinned`` is False.
        """
        choices = list(choices)
        if default is None and self.kind is not list and not self.optional:
            default = self.default if self.default in choices else (choices[0] if choices else None)
        return dataclasses.replace(self, choices=choices, default=default, pinned=pinned)


def parse_value(param: Param, raw: str | Sequence[str] | None) -> tuple[Any, str | None]:
    """Turn a query parameter's raw value(s) into a valid value.

    Args:
        param: what the value should be.
        raw: the value(s) from the URL: a string, a list of strings (repeated keys; the last
            one wins, as in ``st.query_params``), or ``None`` when the URL has none.

    Returns:
        ``(value, notice)``: the value to use, and a one-line notice when the URL's value was
        ignored or changed (``None`` when it was used as is or absent).
    """
    if raw is None:
        return param.default, None
    if not isinstance(raw, str):
        raw = [str(item) for item in raw] if isinstance(raw, Sequence) else [str(raw)]
        if not raw:
            return param.default, None
        raw = raw[-1]
    text = raw.strip()
    if len(text) > MAX_VALUE_CHARS:
        return param.default, _notice(param, text[:40] + "...", "the value is too long")
    if text == "":
        if param.optional:
            return None, None
        if param.kind is list:
            return [], None
        return param.default, None
    try:
        value = _convert(param, text)
    except ValueError as err:
        return param.default, _notice(param, text, str(err))
    return _check(param, text, value)


def _convert(param: Param, text: str) -> Any:
    if param.kind is int:
        # Decimal, not float: a link's seed 10000000000000001 must not become 10**16.
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError("expected a whole number") from None
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError("expected a whole number")
        if number.adjusted() > MAX_INT_DIGITS:
            raise ValueError("the number is too large")
        return int(number)
    if param.kind is float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError("expected a number") from None
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number
    if param.kind is bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("expected true or false")
    if param.kind is list:
        items = [item.strip() for item in text.split(",") if item.strip()]
        return list(dict.fromkeys(items))  # unique, order kept
    return text


def _check(param: Param, text: str, value: Any) -> tuple[Any, str | None]:
    if param.kind is list:
        notice = None
        if param.choices is not None:
            unknown = [item for item in value if item not in param.choices]
            if unknown:
                value = [item for item in value if item in param.choices]
                notice = _notice(param, ",".join(unknown), "not found", what="ignored")
        if len(value) > MAX_LIST_ITEMS:
            value = value[:MAX_LIST_ITEMS]
            notice = notice or _notice(param, text[:40], f"kept the first {MAX_LIST_ITEMS}", what="shortened")
        return value, notice
    if param.kind in (int, float):
        if param.minimum is not None and value < param.minimum:
            clamped = param.kind(param.minimum) if param.kind is float else math.ceil(param.minimum)
            return clamped, _notice(
                param, text, f"below the minimum {_fmt(param.minimum)}", what="changed", using=clamped
            )
        if param.maximum is not None and value > param.maximum:
            clamped = param.kind(param.maximum) if param.kind is float else math.floor(param.maximum)
            return clamped, _notice(
                param, text, f"above the maximum {_fmt(param.maximum)}", what="changed", using=clamped
            )
    if param.choices is not None and value not in param.choices:
        reason = "not one of the choices" if len(param.choices) > 0 else "nothing to choose from"
        return param.default, _notice(param, text, reason)
    return value, None


def _notice(
    param: Param, text: str, reason: str, *, what: str = "ignored", using: Any = dataclasses.MISSING
) -> str:
    shown = text if len(text) <= 40 else text[:37] + "..."
    using = param.default if using is dataclasses.MISSING else using
    if isinstance(using, list):
        tail = ""
    elif using is None:
        tail = "; using none"
    else:
        tail = f"; using {_fmt(using)}"
    return f"{what} {param.name}={shown!r} from the link: {reason}{tail}"


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def parse(query: Mapping[str, Any], params: Iterable[Param]) -> tuple[dict[str, Any], list[str]]:
    """Parse several parameters at once.

    Args:
        query: the URL's query parameters (e.g. ``st.query_params.to_dict()``; values are
            strings or lists of strings).
        params: the parameters of the view.

    Returns:
        ``(values, notices)``: a value for every parameter, and the notices of those ignored.
    """
    values, notices = {}, []
    for param in params:
        value, notice = parse_value(param, query.get(param.name))
        values[param.name] = value
        if notice:
            notices.append(notice)
    return values, notices


class Fallbacks:
    """Link values that could not be used as they were, replaced by a fallback (a default, a
    clamp), until the user sets the control: a write action never runs on a value nobody chose.

    The state is a plain dict (a Streamlit page keeps it in ``st.session_state``), mapping a
    parameter name to ``(fallback value, notice)``.

    Example::

        fallbacks = Fallbacks()
        value, notice = parse_value(dataset, ["cats"])   # ("digits", "ignored dataset='cats' ...")
        fallbacks.record("dataset", value, notice)
        fallbacks.pending()                              # {"dataset": "ignored dataset='cats' ..."}
        fallbacks.observe("dataset", "fashion")          # the user picked another one: confirmed
    """

    def __init__(self, state: dict[str, tuple[Any, str]] | None = None):
        self.state = {} if state is None else state

    def record(self, name: str, value: Any, notice: str) -> None:
        """``name`` holds ``value`` in place of what the link said (``notice`` says why)."""
        self.state[name] = (value, notice)

    def observe(self, name: str, value: Any) -> None:
        """The control's current value: one other than the fallback was set by the user."""
        if name in self.state and not _same(self.state[name][0], value):
            del self.state[name]

    def replace(self, name: str, value: Any) -> None:
        """The page, not the user, changed a pending control's value: it stays pending."""
        if name in self.state:
            self.state[name] = (value, self.state[name][1])

    def confirm(self, name: str) -> None:
        """The user chose to keep the fallback."""
        self.state.pop(name, None)

    def value(self, name: str) -> Any:
        return self.state[name][0]

    def pending(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """Notices of the pending parameters (of ``names`` only, when given), by name."""
        wanted = None if names is None else set(names)
        return {name: notice for name, (_, notice) in self.state.items() if wanted is None or name in wanted}


def _same(a: Any, b: Any) -> bool:
    # 3 and 3.0 are the same number input value; True and 1 are not the same checkbox value.
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float))
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b
    )


def encode_value(value: Any) -> str | None:
    """A value as it goes into a URL (``None`` = leave the parameter out)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _fmt(round(value, 6))
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value) or None
    return str(value)


def to_query(values: Mapping[str, Any], params: Mapping[str, Param] | None = None) -> dict[str, str]:
    """Values to query parameters; ``None`` and empty lists are left out, and so are values equal
    to the default of an unpinned parameter in ``params`` (shorter links, same view)."""
    query = {}
    for name, value in values.items():
        param = (params or {}).get(name)
        if param is not None and not param.pinned and value == param.default:
            continue
        encoded = encode_value(value)
        if encoded is not None:
            query[name] = encoded
    return query


def share_url(
    base: str | None,
    values: Mapping[str, Any],
    params: Mapping[str, Param] | None = None,
    *,
    fallback: str = "http://localhost:8501/",
) -> str:
    """The link that reopens a view.

    Args:
        base: the page's URL without a query (``st.context.url``); ``fallback`` when unknown.
        values: the view's parameter values (encoded with :func:`encode_value`).
        params: the view's parameters, to leave out unpinned defaults (see :func:`to_query`).
        fallback: used when ``base`` is empty.

    Returns:
        ``base?name=value&...`` with parameters in the given order.
    """
    scheme, netloc, path, _, _ = urlsplit(base or fallback)
    return urlunsplit((scheme, netloc, path, urlencode(to_query(values, params)), ""))
