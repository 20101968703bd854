"""bulk_delete: a delete-many of many messages."""

from __future__ import annotations

from relayq.services.anomalies.bulk import BulkOperation


class BulkDelete(BulkOperation):
    """See BulkOperation; fires on `bulk_delete` entries."""

    type = "bulk_delete"
    actions = frozenset({"bulk_delete"})
    verb = "deleted"
