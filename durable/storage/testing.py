"""The storage contract suite: every promise of `durable.storage.base.Store`, as checks.

Run it against any backend, either all at once::

    await check_store(factory)  # factory() -> async context manager yielding a fresh store

or one check per test, with a pytest fixture that yields a fresh, migrated store::

    @pytest.mark.parametrize("check", STORE_CHECKS.values(), ids=STORE_CHECKS.keys())
    async def test_contract(store, check):
        await check(store)

Each check gets an empty store and leaves it open (the caller closes it). Checks use
only the public `Store` API and real time, with margins of seconds to hours, so they
hold for backends whose clock is the database server's. Lease expiry is tested without
sleeping by claiming with `lease_seconds=0` (the lease lapses at once).

The checks live in `_contract_basics` (schema, binaries, tasks, workers, claims),
`_contract_history` (events, logs, outcomes, timers, waiting), `_contract_events`
(notifications, cancellation, children, names and filters), `_contract_guest`
(transactions for workflow SQL), `_contract_deaths` (worker deaths, quarantine) and
`_contract_status` (task status values), `_contract_children` (a workflow cancelling
its children), `_contract_fork` (forks, a workflow's binaries, moves onto a new one) and
`_contract_runs` (runs of a task: `durable.continue_as_new`) and `_contract_affinity`
(claim affinity: a task held for the worker that keeps its instance live).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

# Imported for their side effect: each module registers its checks.
from durable.storage import (
    _contract_affinity,
    _contract_basics,
    _contract_children,
    _contract_deaths,
    _contract_events,
    _contract_fork,
    _contract_guest,
    _contract_history,
    _contract_runs,
    _contract_status,
)
from durable.storage._contract import STORE_CHECKS, StoreCheck
from durable.storage.base import Store

__all__ = ["STORE_CHECKS", "StoreCheck", "StoreFactory", "check_store"]

_MODULES = (
    _contract_basics,
    _contract_history,
    _contract_events,
    _contract_guest,
    _contract_deaths,
    _contract_status,
    _contract_children,
    _contract_fork,
    _contract_runs,
    _contract_affinity,
)

StoreFactory = Callable[[], AbstractAsyncContextManager[Store]]
"""Makes a fresh, empty, migrated store and closes it on exit."""


async def check_store(factory: StoreFactory) -> None:
    """Run every check in `STORE_CHECKS`, each against a fresh store from `factory`.

    Raises:
        AssertionError: the first broken promise, with a note naming the check.
    """
    for name, check in STORE_CHECKS.items():
        async with factory() as store:
            try:
                await check(store)
            except AssertionError as exc:
                exc.add_note(f"store contract check {name!r} failed on {store.url}")
                raise
