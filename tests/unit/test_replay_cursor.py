"""The pure replay cursor and entropy derivation."""

from __future__ import annotations

import pytest

from durable.core.entropy import derive_bytes
from durable.core.model import Event
from durable.core.replay import ReplayCursor
from durable.errors import NondeterminismError


def _history(*labels: str) -> list[Event]:
    return [
        Event(index=i, label=label, digest=None, payload=str(i)) for i, label in enumerate(labels)
    ]


def test_replays_then_records() -> None:
    cursor = ReplayCursor(_history("a", "b"))
    assert cursor.replaying
    first = cursor.next("a")
    assert first is not None
    assert first.payload == "0"
    second = cursor.next("b")
    assert second is not None
    assert second.payload == "1"
    assert not cursor.replaying
    assert cursor.next("c") is None
    event = cursor.record("c", "d1", '"x"')
    assert (event.index, event.label, event.digest) == (2, "c", "d1")
    assert cursor.take_pending() == [event]
    assert cursor.take_pending() == []
    assert cursor.position == 3


def test_label_mismatch_names_index_expected_and_found() -> None:
    cursor = ReplayCursor(_history("a", "step charge"))
    cursor.next("a")
    with pytest.raises(NondeterminismError) as info:
        cursor.next("step refund")
    err = info.value
    assert err.index == 1
    assert err.expected == "'step charge'"
    assert err.found == "'step refund'"
    assert "event 1" in str(err)
    assert cursor.position == 1  # did not advance


def test_digest_mismatch_is_nondeterminism() -> None:
    cursor = ReplayCursor([Event(index=0, label="step f", digest="aaa", payload="1")])
    with pytest.raises(NondeterminismError) as info:
        cursor.next("step f", "bbb")
    assert "aaa" in info.value.expected
    assert "bbb" in info.value.found


def test_ending_early_is_nondeterminism() -> None:
    cursor = ReplayCursor(_history("a", "b"))
    cursor.next("a")
    with pytest.raises(NondeterminismError) as info:
        cursor.check_finished()
    assert info.value.index == 1
    assert "end of the workflow" in info.value.found


def test_record_while_replaying_is_a_bug() -> None:
    cursor = ReplayCursor(_history("a"))
    with pytest.raises(RuntimeError):
        cursor.record("b", None, "1")


def test_history_with_gap_is_refused() -> None:
    with pytest.raises(ValueError, match="gap"):
        ReplayCursor([Event(index=1, label="a", digest=None, payload="1")])


def test_restore_pending_keeps_order() -> None:
    cursor = ReplayCursor([])
    a = cursor.record("a", None, "1")
    taken = cursor.take_pending()
    b = cursor.record("b", None, "2")
    cursor.restore_pending(taken)
    assert cursor.take_pending() == [a, b]


def test_entropy_is_deterministic_and_keyed() -> None:
    assert derive_bytes(7, 0, 1, 100) == derive_bytes(7, 0, 1, 100)
    assert len(derive_bytes(7, 0, 1, 1000)) == 1000
    assert derive_bytes(7, 0, 1, 32) != derive_bytes(8, 0, 1, 32)  # seed
    assert derive_bytes(7, 0, 1, 32) != derive_bytes(7, 1, 1, 32)  # position
    assert derive_bytes(7, 0, 1, 32) != derive_bytes(7, 0, 2, 32)  # counter
    assert derive_bytes(7, 0, 1, 100)[:32] == derive_bytes(7, 0, 1, 32)
