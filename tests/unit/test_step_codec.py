"""The guest SDK's quick step codec gives exactly what the general `json` code gives:
the same argument digest (histories recorded before it replay unchanged) and the same
recorded value, or it declines and leaves the payload to the general path."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable.guest import sdk_path


def _load_codec() -> ModuleType:
    # The SDK's `durable` package is not the host's: load the one pure file by path.
    path = Path(sdk_path()) / "durable" / "_codec.py"
    spec = importlib.util.spec_from_file_location("_guest_step_codec", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


codec = _load_codec()


def _general_digest(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The SDK's digest before the quick path (what every recorded history holds)."""
    try:
        text = json.dumps([args, kwargs], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class IntLike(int):
    pass


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinities included: no digest
    st.text(),
    st.integers().map(IntLike),  # a subclass: the general path
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


@given(st.tuples() | st.lists(values, max_size=4).map(tuple), st.dictionaries(st.text(), values))
def test_the_digest_is_the_general_one(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    assert codec.digest(args, kwargs) == _general_digest(args, kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((1, 2), {}),
        ((), {"b": 1, "a": "x"}),
        ((True, None, 1.5, "é\n\u2028"), {"z": False}),
        ((10**5000,), {}),  # over the int digit limit: json refuses, so no digest
        ((float("nan"),), {}),
        ((1,), {"k": float("inf")}),
        ((object(),), {}),
        (([1, 2], {"a": (3,)}), {}),
    ],
)
def test_the_digest_of_edge_cases(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    assert codec.digest(args, kwargs) == _general_digest(args, kwargs)


@given(values)
def test_a_recorded_value_decodes_as_json_loads(value: Any) -> None:
    try:
        text = json.dumps({"ok": value}, allow_nan=False)
    except ValueError:
        return
    got = codec.decode_ok(text)
    assert got is not codec.NOT_PLAIN
    assert json.dumps(got) == json.dumps(json.loads(text)["ok"])


@pytest.mark.parametrize(
    "text",
    [
        '{"error": {"kind": "ValueError", "message": "x", "args": ["x"]}}',
        '{"ok":1}',
        '{"ok":  1}',
        '{"ok": 1 }',
        '{"ok": 1, "ok": 2}',
        '{"ok": 1}}',
        '{"ok": }',
        '{"ok": NaN}x',
        '{"ok": [1, 2',
    ],
)
def test_other_payloads_take_the_general_path(text: str) -> None:
    assert codec.decode_ok(text) is codec.NOT_PLAIN


def test_the_general_values_of_plain_payloads() -> None:
    assert codec.decode_ok('{"ok": null}') is None
    assert codec.decode_ok('{"ok": {"a": [1, 2.5, "x"]}}') == {"a": [1, 2.5, "x"]}
    assert math.isnan(codec.decode_ok('{"ok": NaN}'))  # as json.loads reads it
