"""bulk_move: an admin move of many messages."""

from __future__ import annotations

from relayq.services.anomalies.bulk import BulkOperation


class BulkMove(BulkOperation):
    """See BulkOperation; fires on `move` entries."""

    type = "bulk_move"
    actions = frozenset({"move"})
    verb = "moved"
