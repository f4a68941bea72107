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


def _null(_: None) -> str:
    return "null"


def _bool(value: bool) -> str:
    return "true" if value else "false"


# An exact type's JSON text, as json's encoder writes it (subclasses take the general
# path). `repr` is `int.__repr__` for an exact int, and a cheaper call.
_SCALARS: dict[type, Callable[[Any], str]] = {
    int: repr,
    str: encode_basestring_ascii,
    bool: _bool,
    type(None): _null,
    float: _finite_float,
}
_sha256 = hashlib.sha256


def digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """A short hash of the arguments, or None when they are not JSON (e.g. objects).

    The text hashed is `json.dumps([args, kwargs], sort_keys=True, allow_nan=False)`,
    written here directly when every value is a plain int, str, bool, None or finite
    float (most steps' arguments), else by `json` itself.
    """
    scalars = _SCALARS
    try:
        head = ", ".join([scalars[type(a)](a) for a in args])
        if kwargs:
            items = ", ".join(
                [
                    encode_basestring_ascii(k) + ": " + scalars[type(v)](v)
                    for k, v in sorted(kwargs.items())
                ]
            )
            text = f"[[{head}], {{{items}}}]"
        else:
            text = f"[[{head}], {{}}]"
    except (KeyError, ValueError):  # another type; an int over the digit limit; NaN
        try:
            text = json.dumps([args, kwargs], sort_keys=True, allow_nan=False)
        except (TypeError, ValueError):
            return None
    return _sha256(text.encode()).hexdigest()[:16]


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
