"""Activity, anomalies and consumer stats endpoints (API.md §6)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relayq.api.http import endpoint, ok
from relayq.api.routes.messages import relay
from relayq.api.validation import EPOCH_MAX, EPOCH_MIN, Field, count_bound, parse_query
from relayq.services.activity import ActivityFilter
from relayq.services.activity.store import ANOMALY_SORTS
from relayq.services.extensions import extensions_of
from relayq.services.stats import stats_to_wire

PAGING = (
    Field("limit", "int", default=100, minimum=1, maximum=1000),
    Field("offset", "int", default=0, minimum=0),
)
# Held to the years 1-9999 (later ones count as 9999): beyond them PostgreSQL refused the value
# inside the query, a 400 that named no field.
RANGE = tuple(Field(name, "number", minimum=EPOCH_MIN, maximum=EPOCH_MAX, clamp_max=True, doc="Unix seconds, inclusive")
              for name in ("start_time", "end_time"))
QUEUE = Field("queue_name", "str", aliases=("queue", "queueName"))
MAX_COUNT = Field("maxCount", "int", minimum=1, doc="new: count only the newest this many matches (the dashboard "
                  "sends 10000); with more, total is this number, totalExact false, the summary covers these")
ACTION = Field("action", "str", doc="one action or a comma list")

ACTIVITY_QUERY = (
    Field("message_id", "str"),
    Field("consumer_id", "str"),
    ACTION,
    QUEUE,
    *RANGE,
    Field("has_anomaly", "bool", doc="true: only entries with an anomaly"),
    Field("anomaly_type", "str"),
    MAX_COUNT,
    *PAGING,
)
ANOMALY_QUERY = (
    Field("severity", "choice", choices=("info", "warning", "critical")),
    Field("type", "str", doc="anomaly type"),
    ACTION,
    QUEUE,
    *RANGE,
    Field("sort_by", "choice", default="timestamp", choices=tuple(ANOMALY_SORTS)),
    Field("sort_order", "choice", default="desc", choices=("asc", "desc")),
    MAX_COUNT,
    *PAGING,
)
CONSUMER_QUERY = (Field("consumer_id", "str"), Field("queue_name", "str", aliases=("queue", "queueName"),
                                                     doc="(new) only this queue's counts"))


def _trimmed(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def _actions(value: str | None) -> list[str] | None:
    if not value:
        return None
    actions = [a.strip() for a in value.split(",") if a.strip()]
    return actions or None


def _pagination(total: int, limit: int, offset: int) -> dict[str, Any]:
    more = offset + limit < total
    return {"total": total, "limit": limit, "offset": offset, "has_more": more, "hasMore": more}


@endpoint("GET", "/queue/activity", summary="Activity log, newest first, with filters", tag="activity",
          query=ACTIVITY_QUERY)
async def activity(request: Request) -> Response:
    q = parse_query(ACTIVITY_QUERY, request.query_params)
    flt = ActivityFilter(
        message_id=_trimmed(q["message_id"]), consumer_id=_trimmed(q["consumer_id"]), actions=_actions(q["action"]),
        queue=q["queue_name"], start=q["start_time"], end=q["end_time"], has_anomaly=q["has_anomaly"],
        anomaly_type=_trimmed(q["anomaly_type"]),
    )
    logs, by_action, exact = await extensions_of(relay(request)).store.list_entries(
        flt, q["limit"], q["offset"], count_bound(q["maxCount"], q["offset"] + q["limit"]))
    total = sum(by_action.values())
    pagination = _pagination(total, q["limit"], q["offset"])
    if not exact:
        pagination["has_more"] = pagination["hasMore"] = True
    return ok({"logs": logs, "total": total, "pagination": {**pagination, "totalExact": exact},
               "summary": {"total": total, "by_action": by_action}})  # summary is new: all matches, not a page


@endpoint("GET", "/queue/activity/message/{id}", summary="One message's history, oldest first", tag="activity")
async def message_history(request: Request) -> Response:
    message_id = request.path_params["id"].strip()
    history = await extensions_of(relay(request)).store.history(message_id)
    return ok({"message_id": message_id, "history": history})


@endpoint("GET", "/queue/activity/anomalies", summary="Anomalies with filters, sorting and a summary",
          tag="activity", query=ANOMALY_QUERY)
async def anomalies(request: Request) -> Response:
    q = parse_query(ANOMALY_QUERY, request.query_params)
    flt = ActivityFilter(actions=_actions(q["action"]), queue=q["queue_name"], start=q["start_time"],
                         end=q["end_time"], anomaly_type=_trimmed(q["type"]), severity=q["severity"])
    found, summary, exact = await extensions_of(relay(request)).store.anomalies(
        flt, q["sort_by"], q["sort_order"], q["limit"], q["offset"], count_bound(q["maxCount"], q["offset"] + q["limit"]))
    pagination = _pagination(summary["total"], q["limit"], q["offset"])
    del pagination["hasMore"]
    if not exact:
        pagination["has_more"] = True
    return ok({"anomalies": found, "summary": summary, "pagination": {**pagination, "totalExact": exact}})


@endpoint("DELETE", "/queue/activity/clear", summary="Delete all activity, anomalies and consumer stats",
          tag="activity")
async def clear(request: Request) -> Response:
    ext = extensions_of(relay(request))
    ext.stats.clear()
    if ext.activity is not None:
        await ext.activity.clear()
    else:
        await ext.store.clear()
    return ok({"message": "Activity logs cleared successfully"})


@endpoint("GET", "/queue/activity/consumers", summary="Per-consumer dequeue, ack and failure counts",
          tag="activity", query=CONSUMER_QUERY)
async def consumers(request: Request) -> Response:
    q = parse_query(CONSUMER_QUERY, request.query_params)
    stats = await extensions_of(relay(request)).stats.read(_trimmed(q["consumer_id"]))
    return ok({"stats": stats_to_wire(stats, _trimmed(q["queue_name"]))})
