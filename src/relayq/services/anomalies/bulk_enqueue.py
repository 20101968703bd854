"""bulk_enqueue: a batch enqueue of many messages."""

from __future__ import annotations

from relayq.services.anomalies.bulk import BulkOperation


class BulkEnqueue(BulkOperation):
    """See BulkOperation; fires on `enqueue` entries."""

    type = "bulk_enqueue"
    actions = frozenset({"enqueue"})
    verb = "enqueued"
