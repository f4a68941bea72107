"""Move money between two accounts in one SQL transaction, exactly once.

Create the tables once, before any transfer runs (the `setup` entry), then transfer:

    durable run examples/bank_transfer.py --entry setup
    durable run examples/bank_transfer.py --input '{"from": "alice", "to": "bob", "cents": 2500}'

Input of a transfer (every field optional): a JSON object with
  - "from", "to": the account names (default "alice" and "bob");
  - "cents": the amount to move (default 2500);
  - "opening_cents": the balance an account starts with when it does not exist yet
    (default 10000).

The tables live in the worker's own database (the SQLite file, or Postgres), next to
durable's: `bank_accounts` (name, balance) and `bank_transfers`, a journal with one row
per transfer, naming the task that made it. A transfer opens the two accounts if
missing, moves the money and returns both balances. If the source account cannot
cover the amount, the block raises, the transaction rolls back and the task fails with
that error.

Why the tables are not created by each transfer: the schema is the application's,
created once, like any migration. `CREATE TABLE IF NOT EXISTS` inside every task's
transaction is not safe when tasks run at once on Postgres: two transactions that both
find the table missing both create it, and one fails (a unique violation in Postgres's
own catalog), failing its task. Creating accounts with `INSERT ... ON CONFLICT DO
NOTHING` is safe: a concurrent insert of the same key waits for the other and skips.

Kill the worker at any moment and resume it with `durable worker`: the transfer is
applied once. Before the commit nothing of it is durable and the replay runs it again;
after the commit, its changes and the event that records its result are in the database
together, so the replay returns the recorded balances without running any SQL.
"""

from __future__ import annotations

from typing import Any

import durable


class InsufficientFunds(Exception):
    """The source account cannot cover the transfer."""


@durable.workflow
def setup(_: object = None) -> str:
    """Create the tables: once, before any transfer (run it alone, not beside transfers)."""
    with durable.transaction("setup") as tx:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS bank_accounts ("
            " name TEXT PRIMARY KEY,"
            " balance_cents BIGINT NOT NULL CHECK (balance_cents >= 0))"
        )
        tx.execute(
            "CREATE TABLE IF NOT EXISTS bank_transfers ("
            " task_id BIGINT NOT NULL, from_account TEXT NOT NULL,"
            " to_account TEXT NOT NULL, cents BIGINT NOT NULL)"
        )
    return "ready"


@durable.workflow
def main(args: dict[str, Any] | None = None) -> dict[str, int]:
    args = args or {}
    source, target = args.get("from", "alice"), args.get("to", "bob")
    cents, opening = int(args.get("cents", 2500)), int(args.get("opening_cents", 10_000))
    task_id = durable.info().id

    with durable.transaction("transfer") as tx:
        for name in (source, target):
            tx.execute(
                "INSERT INTO bank_accounts (name, balance_cents) VALUES (?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                [name, opening],
            )
        debited = tx.execute(
            "UPDATE bank_accounts SET balance_cents = balance_cents - ?"
            " WHERE name = ? AND balance_cents >= ?",
            [cents, source, cents],
        )
        if debited.rowcount != 1:
            raise InsufficientFunds(f"{source} cannot cover {cents} cents")
        tx.execute(
            "UPDATE bank_accounts SET balance_cents = balance_cents + ? WHERE name = ?",
            [cents, target],
        )
        tx.execute(
            "INSERT INTO bank_transfers (task_id, from_account, to_account, cents)"
            " VALUES (?, ?, ?, ?)",
            [task_id, source, target, cents],
        )
        rows = tx.execute(
            "SELECT name, balance_cents FROM bank_accounts WHERE name IN (?, ?)",
            [source, target],
        ).fetchall()

    balances = {name: int(balance) for name, balance in rows}
    print(f"moved {cents} cents from {source} to {target}: {balances}")
    return balances
