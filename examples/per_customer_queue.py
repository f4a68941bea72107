"""Order confirmations through a queue: a limit per customer, and a rate limit overall.

    durable queue set emails --concurrency 4 --key-concurrency 1 --rate 20/1s
    durable launch confirm examples/per_customer_queue.py \
        --input '{"customer": "acme", "order": 1}' --queue emails --queue-key acme
    durable worker

A workflow can put its children on the queue too: the entry `batch` spawns one
confirmation per order onto `emails`, each keyed by its customer, and sums them up:

    durable launch confirm-batch examples/per_customer_queue.py --entry batch \
        --input '{"orders": [["acme", 1], ["globex", 2]]}'

However many workers run, at most 4 confirmations are being prepared at once, at most
one per customer (so one customer's burst cannot starve the others), and at most 20
start per second (the mail provider's limit). The limits live in the database, with
the tasks: they hold across workers, and can be changed while tasks wait.
"""

from __future__ import annotations

import time

import durable


@durable.step
def send_confirmation(customer: str, order: int) -> str:
    # A real workflow would call the mail provider here (see durable.http); a step's
    # result is recorded, so a retry after a crash does not send twice.
    return f"order {order} confirmed for {customer}"


@durable.workflow
def main(job: dict[str, object]) -> str:
    customer = str(job["customer"])
    order = int(str(job["order"]))
    time.sleep(float(str(job.get("prepare", 0.2))))  # rendering the mail: holds a slot
    return send_confirmation(customer, order)


@durable.workflow
def batch(job: dict[str, object]) -> list[str]:
    orders = job["orders"]
    assert isinstance(orders, list)
    children = [
        durable.spawn(
            main,
            {"customer": customer, "order": order, "prepare": job.get("prepare", 0.2)},
            name=f"{customer}-{order}",
            queue=str(job.get("queue", "emails")),
            queue_key=customer,
        )
        for customer, order in orders
    ]
    return [child.result() for child in children]
