"""The activity log: entries built from changes, anomaly detection, batched writes, retention."""

from relayq.services.activity.log import DURABLE_ACTIONS, ActivityLog
from relayq.services.activity.retention import ActivityRetention
from relayq.services.activity.store import ActivityFilter, ActivityStore

__all__ = ["DURABLE_ACTIONS", "ActivityFilter", "ActivityLog", "ActivityRetention", "ActivityStore"]
