"""A small microservice pipeline: orders -> payments -> shipping, one consumer group per service,
at least once: each service commits only after its output is acknowledged.

    python examples/order_pipeline.py [--orders 300] [--bootstrap HOST:PORT]

- a shop writes orders to ``demo-orders`` (key = order id);
- the payments service (group ``payments``) reads orders, charges them and writes a payment to
  ``demo-payments``; it flushes its producer (acks=all) and only then commits the orders;
- the shipping service (group ``shipping``) reads payments and writes shipments to ``demo-shipments``.
If a service dies between writing and committing, its successor processes those records again
(at least once); the key (order id) lets the next service recognise a repeat. Exit code 0 when
every order was shipped.
"""

from __future__ import annotations

import json
import sys
import threading

from _common import broker, parser, wait_for
from kbroker import Admin, Consumer, Producer

ORDERS, PAYMENTS, SHIPMENTS = "demo-orders", "demo-payments", "demo-shipments"


def service(bootstrap: str, group: str, source: str, sink: str, work, stop: threading.Event, done: dict) -> None:
    """Consume ``source`` in ``group``; for each record write ``work(record)`` to ``sink``; commit after."""
    with Consumer(bootstrap, group_id=group, enable_auto_commit=False) as consumer, Producer(bootstrap, acks="all") as producer:
        consumer.subscribe([source])
        while not stop.is_set():
            records = consumer.poll(200)
            for record in records:
                producer.send(sink, json.dumps(work(json.loads(record.value))).encode(), key=record.key)
            if records:
                producer.flush(30)  # our output is acknowledged ...
                consumer.commit()  # ... so the input may be marked done
                done[group] = done.get(group, 0) + len(records)


def charge(order: dict) -> dict:
    return {"order": order["order"], "amount": order["amount"], "status": "paid"}


def ship(payment: dict) -> dict:
    return {"order": payment["order"], "carrier": "kbroker-express", "status": "shipped"}


def run(bootstrap: str, orders: int) -> int:
    with Admin(bootstrap, timeout=20) as admin:
        existing = set(admin.list_topics())
        for topic in (ORDERS, PAYMENTS, SHIPMENTS):
            if topic not in existing:
                admin.create_topic(topic, 3, None)
    stop, done = threading.Event(), {}
    threads = [
        threading.Thread(target=service, args=(bootstrap, "payments", ORDERS, PAYMENTS, charge, stop, done), daemon=True),
        threading.Thread(target=service, args=(bootstrap, "shipping", PAYMENTS, SHIPMENTS, ship, stop, done), daemon=True),
    ]
    for t in threads:
        t.start()
    with Producer(bootstrap, acks="all") as shop:
        for i in range(orders):
            order = {"order": f"order-{i:05d}", "amount": 10 + i % 90}
            shop.send(ORDERS, json.dumps(order).encode(), key=order["order"].encode())
    print(f"the shop placed {orders} orders")

    shipped: set[str] = set()
    with Consumer(bootstrap) as reader:  # no group: reads the whole shipments topic
        reader.subscribe([SHIPMENTS])

        def all_shipped() -> bool:
            shipped.update(json.loads(r.value)["order"] for r in reader.poll(200))
            return len(shipped) >= orders

        wait_for("every order to be shipped", all_shipped, timeout=90)
    stop.set()
    for t in threads:
        t.join(15)
    print(f"payments processed {done.get('payments', 0)} orders, shipping {done.get('shipping', 0)} payments; "
          f"{len(shipped)} distinct orders shipped")
    with Admin(bootstrap, timeout=20) as admin:
        for group in ("payments", "shipping"):
            info = admin.describe_group(group)
            print(f"group {group}: lag {sum(p.lag for p in info.partitions if p.lag is not None and p.lag >= 0)}")
    return 0 if len(shipped) == orders else 1


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--orders", type=int, default=300)
    args = p.parse_args(argv)
    with broker(args.bootstrap) as bootstrap:
        return run(bootstrap, args.orders)


if __name__ == "__main__":
    sys.exit(main())
