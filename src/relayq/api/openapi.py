"""The OpenAPI 3.1 document, generated from the endpoint registry and its Field declarations."""

from __future__ import annotations

import re
from typing import Any

from relayq.api.http import REGISTRY, Endpoint
from relayq.api.validation import Field, upper_bound
from relayq.domain.errors import ERROR_CODES

_KIND_SCHEMA: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "choice": {"type": "string"},
    "int": {"type": "integer"},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "array": {"type": "array", "items": {}},
    "object": {"type": "object"},
    "timestamp": {"type": "string", "description": "ISO-8601, or Unix milliseconds"},
    "any": {},
}

# Endpoints that answer without the database (their 503 never happens); the open ones (health,
# docs, the event stream) have no 503 either.
NO_DATABASE_PATHS = frozenset({"/internal/stats", "/queue/config"})

ERROR_SCHEMA = {
    "type": "object",
    "required": ["message", "code"],
    "properties": {
        "message": {"type": "string"},
        "code": {"type": "string", "enum": sorted(ERROR_CODES)},
        "error": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object", "properties": {
            "field": {"type": "string"}, "message": {"type": "string"}}}},
    },
}


def field_schema(spec: Field, *, query: bool = False) -> dict[str, Any]:
    """JSON Schema of one field."""
    schema = dict(_KIND_SCHEMA[spec.kind])
    if spec.kind == "bool" and query:
        schema = {"type": "string", "enum": ["true", "false"]}
    if spec.choices:
        schema["enum"] = list(spec.choices)
    if spec.minimum is not None:
        schema["exclusiveMinimum" if spec.exclusive_minimum else "minimum"] = spec.minimum
    if (top := upper_bound(spec)) is not None and not spec.clamp_max:
        schema["maximum"] = top
    if spec.kind == "array":
        if isinstance(spec.items, str):
            schema["items"] = dict(_KIND_SCHEMA[spec.items])
        elif spec.items:
            schema["items"] = _object_schema(spec.items)
        if spec.min_length is not None:
            schema["minItems"] = spec.min_length
        if spec.max_length is not None:
            schema["maxItems"] = spec.max_length
    else:
        if spec.max_length is not None:
            schema["maxLength"] = spec.max_length
        if spec.min_length is not None:
            schema["minLength"] = spec.min_length
    if spec.default is not None:
        schema["default"] = spec.default
    if spec.doc:
        schema["description"] = spec.doc
    if spec.nullable and schema:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _object_schema(fields: tuple[Field, ...] | list[Field]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {f.name: field_schema(f) for f in fields},
        "required": [f.name for f in fields if f.required],
    }


def _operation(ep: Endpoint) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"\{(\w+)\}", ep.path)
    ]
    params += [
        {"name": f.name, "in": "query", "required": f.required, "schema": field_schema(f, query=True)}
        for f in ep.query
    ]
    op: dict[str, Any] = {
        "operationId": ep.handler.__name__,
        "summary": ep.summary,
        "tags": [ep.tag],
        "parameters": params,
        "responses": {},
    }
    if ep.description:
        op["description"] = ep.description
    if ep.body_kind == "multipart":
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}}}}
    elif ep.body is not None:
        schema = _object_schema(list(ep.body))
        if ep.body_kind == "array":
            schema = {"type": "array", "items": schema}
        op["requestBody"] = {"required": any(f.required for f in ep.body) or ep.body_kind == "array",
                             "content": {"application/json": {"schema": schema}}}
    for status, text in sorted(ep.responses.items()):
        if status < 400:
            schema = {} if ep.media_type == "application/json" else {"type": "string"}
            op["responses"][str(status)] = {"description": text, "content": {ep.media_type: {"schema": schema}}}
        else:
            op["responses"][str(status)] = {"description": text, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if ep.body is not None or ep.query:
        op["responses"].setdefault("400", {"description": "VALIDATION_ERROR / INVALID_JSON", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
    if ep.auth and ep.path not in NO_DATABASE_PATHS:
        op["responses"].setdefault("503", {"description": "DATABASE_UNAVAILABLE: nothing changed, retry", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
    if ep.auth:
        op["responses"].setdefault("401", {"description": "UNAUTHORIZED", "content": {
            "application/json": {"schema": {}}}})
    else:
        op["security"] = []
    return op


def build_openapi() -> dict[str, Any]:
    """The whole document; paths are relative to the `/api` server URL."""
    paths: dict[str, dict[str, Any]] = {}
    for ep in REGISTRY:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Relay Queue API", "version": "1.0.0",
                 "description": "Language-agnostic message broker on PostgreSQL."},
        "servers": [{"url": "/api"}],
        "security": [{"APIKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"APIKey": {"type": "apiKey", "in": "header", "name": "X-API-KEY"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
    }
