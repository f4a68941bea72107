"""A step's argument digest and its recorded answer, as text: the same text, quicker.

Why: on replay a step does little but digest its arguments and decode its recorded
payload, and the general `json.dumps(..., sort_keys=True, allow_nan=False)` builds a new
encoder on every call (only the all-defaults call reuses one). Both paths here give
byte-for-byte what the general code gives (a digest recorded by any earlier SDK matches),
and hand anything else to the general code. Pure Python, no WIT imports: the unit tests
load it natively to compare it with `json` over many values.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from json.decoder import JSONDecoder
from json.encoder import encode_basestring_ascii
from typing import Any

#: What `decode_ok` returns for a payload it leaves to the general path.
NOT_PLAIN: Any = object()

_OK_PREFIX = '{"ok": '
_OK_START = len(_OK_PREFIX)
# The scanner `json.loads` runs (the default decoder's); here called at the value itself.
_scan_value = JSONDecoder().scan_once


def _finite_float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError("not finite")  # json with allow_nan=False refuses it: no digest
    return float.__repr__(value)


# An exact type's JSON text, as json's encoder writes it (subclasses take the general path).
_SCALARS: dict[type, Callable[[Any], str]] = {
    int: int.__repr__,
    str: encode_basestring_ascii,
    bool: lambda value: "true" if value else "false",
    type(None): lambda _: "null",
    float: _finite_float,
}


def digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """A short hash of the arguments, or None when they are not JSON (e.g. objects)."""
    text = _scalar_text(args, kwargs)
    if text is None:
        try:
            text = json.dumps([args, kwargs], sort_keys=True, allow_nan=False)
        except (TypeError, ValueError):
            return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _scalar_text(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """`json.dumps([args, kwargs], sort_keys=True, allow_nan=False)` when every value is
    a plain int, str, bool, None or finite float; else None (the general path decides)."""
    scalars = _SCALARS
    try:
        head = ", ".join([scalars[type(a)](a) for a in args])
        if not kwargs:
            return "[[" + head + "], {}]"
        items = [
            encode_basestring_ascii(k) + ": " + scalars[type(v)](v)
            for k, v in sorted(kwargs.items())
        ]
    except (KeyError, ValueError):  # another type; an int over the digit limit; NaN
        return None
    return "[[" + head + "], {" + ", ".join(items) + "}]"


def decode_ok(text: str) -> Any:
    """The value of a payload written as `json.dumps({"ok": value})`, or `NOT_PLAIN`.

    Exactly what `json.loads(text)["ok"]` gives whenever the value is followed by the
    closing brace and nothing else; other texts (errors, other spacing) are `NOT_PLAIN`.
    """
    if text.startswith(_OK_PREFIX) and text.endswith("}"):
        try:
            value, end = _scan_value(text, _OK_START)
        except StopIteration:
            return NOT_PLAIN
        if end == len(text) - 1:
            return value
    return NOT_PLAIN
