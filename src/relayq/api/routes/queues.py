"""Queue management endpoints (API.md §7)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relayq.api.http import endpoint, ok, read_json
from relayq.api.routes.messages import relay
from relayq.api.validation import Field, parse_fields, parse_query, require_object
from relayq.domain.errors import RelayError
from relayq.services.queues import QUEUE_NAME_RE

NAME_RULE = "must match ^[A-Za-z0-9_-]{1,64}$"
SETTINGS_FIELDS = (
    Field("ack_timeout_seconds", "int", minimum=1, aliases=("ackTimeout", "ack_timeout")),
    Field("max_attempts", "int", minimum=1),
    Field("retry_delay_seconds", "int", minimum=0, doc="base of the exponential retry backoff"),
    Field("description", "str", max_length=500),
)
CREATE_FIELDS = (
    Field("name", "str", required=True, doc=NAME_RULE),
    Field("queue_type", "choice", default="standard", choices=("standard", "unlogged", "partitioned"),
          aliases=("type",)),
    *SETTINGS_FIELDS,
    Field("partition_interval", "choice", choices=("hourly", "daily", "weekly")),
    Field("retention_interval", "str", doc="'<n> <unit>', unit hour(s), day(s), week(s) or month(s); at most 100 years"),
)
PURGE_STATUSES = ("queued", "processing", "dead", "acknowledged", "archived", "all")


def check_queue_name(name: str, field: str = "name") -> str:
    """Queue names are identifiers on the wire and in partition names; refuse anything else."""
    if not QUEUE_NAME_RE.match(name):
        raise RelayError(400, "VALIDATION_ERROR", f"Invalid queue name: {NAME_RULE}",
                         details=[{"field": field, "message": NAME_RULE}])
    return name


@endpoint("POST", "/queues", summary="Create a queue", tag="queues", body=CREATE_FIELDS,
          responses={201: "created", 409: "QUEUE_EXISTS", 400: "VALIDATION_ERROR"})
async def create_queue(request: Request) -> Response:
    values = parse_fields(CREATE_FIELDS, require_object(await read_json(request)))
    check_queue_name(values["name"])
    queue = await relay(request).queues.create(values)
    return ok({"message": f"Queue '{values['name']}' created successfully", "queue": queue}, 201)


@endpoint("GET", "/queues", summary="List queues with live counts", tag="queues")
async def list_queues(request: Request) -> Response:
    queues = await relay(request).queues.list()
    return ok({"queues": queues, "total": len(queues)})


@endpoint("GET", "/queues/{name}", summary="One queue", tag="queues", responses={200: "Queue", 404: "QUEUE_NOT_FOUND"})
async def get_queue(request: Request) -> Response:
    return ok(await relay(request).queues.get(request.path_params["name"]))


@endpoint("PATCH", "/queues/{name}", summary="Update a queue's settings", tag="queues", body=SETTINGS_FIELDS,
          responses={200: "updated", 404: "QUEUE_NOT_FOUND"})
async def update_queue(request: Request) -> Response:
    body = await read_json(request, optional=True)
    raw = require_object(body if body is not None else {})
    values = parse_fields(SETTINGS_FIELDS, raw)
    changes = {k: v for k, v in values.items() if v is not None}
    name = request.path_params["name"]
    queue = await relay(request).queues.update(name, changes)
    return ok({"message": f"Queue '{name}' updated successfully", "queue": queue})


@endpoint("DELETE", "/queues/{name}", summary="Delete a queue and its messages", tag="queues",
          query=(Field("force", "bool", default=False),),
          responses={200: "deleted", 400: "QUEUE_NOT_EMPTY / DEFAULT_QUEUE_PROTECTED", 404: "QUEUE_NOT_FOUND"})
async def delete_queue(request: Request) -> Response:
    force = parse_query((Field("force", "bool", default=False),), request.query_params)["force"]
    name = request.path_params["name"]
    deleted = await relay(request).queues.delete(name, force)
    return ok({"message": f"Queue '{name}' deleted successfully", "deleted_messages": deleted})


@endpoint("POST", "/queues/{name}/purge", summary="Delete a queue's messages, keep the queue", tag="queues",
          body=(Field("status", "choice", default="all", choices=PURGE_STATUSES),),
          responses={200: "purged", 404: "QUEUE_NOT_FOUND"})
async def purge_queue(request: Request) -> Response:
    body = await read_json(request, optional=True)
    status = parse_fields((Field("status", "choice", default="all", choices=PURGE_STATUSES),),
                          require_object(body if body is not None else {}))["status"]
    name = request.path_params["name"]
    count = await relay(request).queues.purge(name, status)
    return ok({"message": f"Purged {count} messages from queue '{name}'", "deleted_count": count})


@endpoint("POST", "/queues/{name}/rename", summary="Rename a queue", tag="queues",
          body=(Field("newName", "str", required=True, aliases=("new_name",)),),
          responses={200: "renamed", 404: "QUEUE_NOT_FOUND", 409: "QUEUE_EXISTS"})
async def rename_queue(request: Request) -> Response:
    raw = require_object(await read_json(request))
    values = parse_fields((Field("newName", "str", aliases=("new_name",)),), raw)
    new_name = (values["newName"] or "").strip()
    if not new_name:
        raise RelayError(400, "VALIDATION_ERROR", "New queue name cannot be empty",
                         details=[{"field": "newName", "message": "cannot be empty"}])
    check_queue_name(new_name, "newName")
    name = request.path_params["name"]
    queue = await relay(request).queues.rename(name, new_name)
    return ok({"message": f"Queue renamed from '{name}' to '{new_name}'", "queue": queue})
