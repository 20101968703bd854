"""Producer example: create a queue (once) and enqueue messages with the Python client.

RELAY_URL=http://127.0.0.1:3001 python examples/producer.py --queue emails --count 5
"""

from __future__ import annotations

import argparse

from relayq.client import Client, EnqueueItem, QueueExistsError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default="emails")
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()

    with Client() as client:  # RELAY_URL and RELAY_API_KEY come from the environment
        try:
            client.create_queue(args.queue, ack_timeout=30, max_attempts=3)
        except QueueExistsError:
            pass

        # One message at a time...
        first = client.enqueue(
            {"to": "ada@example.com", "subject": "Welcome"}, type="welcome", queue=args.queue
        )
        print(f"enqueued {first.id}")

        # ...or many in one request (all or nothing), each with its own options.
        if args.count > 1:
            items = [
                EnqueueItem(payload={"to": f"user{i}@example.com"}, type="newsletter", priority=i % 10)
                for i in range(args.count - 1)
            ]
            batch = client.enqueue_batch(items, queue=args.queue)
            print(f"enqueued {batch.count} more: {', '.join(batch.ids)}")


if __name__ == "__main__":
    main()
