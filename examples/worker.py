"""Worker example: handle the messages of a queue with ``relayq.Worker``.

Run it directly:

    RELAY_URL=http://127.0.0.1:3001 python examples/worker.py --queue emails --concurrency 4

or through the CLI, which imports the handler function:

    cd examples && relay worker worker:send_email --queue emails --concurrency 4

A handler that returns acks the message; one that raises nacks it with the exception text,
and the queue's retry policy decides whether it is retried or dead-lettered. Long handlers
are fine: the worker extends the lease while they run. SIGTERM or Ctrl-C shuts down gracefully.
"""

from __future__ import annotations

import argparse
import logging

from relayq.client import Message, Worker


def send_email(message: Message) -> None:
    """Pretend to send the email described by the message's payload."""
    payload = message.payload
    if not isinstance(payload, dict) or "to" not in payload:
        raise ValueError(f"payload has no recipient: {payload!r}")
    print(f"sent {message.type or 'email'} to {payload['to']} (attempt {message.attempt_count})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default="emails")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    Worker(send_email, args.queue, concurrency=args.concurrency).run()


if __name__ == "__main__":
    main()
