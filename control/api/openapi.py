"""The OpenAPI 3.1 document, generated from the live route table.

Each /api/ handler carries `@doc(...)` (summary, body model, query parameters, success
status) next to its `@requires`; paths, methods, path parameters, security and the permission
each route needs come from the router and the guard, so the document cannot drift from what
is served. `GET /api/openapi.json` serves it and `GET /api/docs` renders it as a plain page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from control.auth import declared_permission, public

_DOC_ATTR = "__voxsouth_doc__"
H = TypeVar("H", bound=Callable[..., Awaitable[web.StreamResponse]])


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True, slots=True)
class Doc:
    summary: str
    body: type[BaseModel] | None = None
    query: Sequence[Query] = ()
    status: int = 200
    errors: Sequence[int] = field(default_factory=tuple)


def doc(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    query: Sequence[Query] = (),
    status: int = 200,
    errors: Sequence[int] = (),
) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        setattr(handler, _DOC_ATTR, Doc(summary, body, tuple(query), status, tuple(errors)))
        return handler

    return mark


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
_ERROR_TEXT = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Invalid body",
    429: "Too many requests (see Retry-After)",
    503: "A dependency is unavailable (see Retry-After)",
}


def build(app: web.Application, *, title: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if not path.startswith("/api/") or route.method == "HEAD":
            continue
        info: Doc | None = getattr(route.handler, _DOC_ATTR, None)
        if info is None:
            continue
        declared = declared_permission(route.handler)
        operation: dict[str, Any] = {
            "summary": info.summary,
            "operationId": f"{route.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path[5:])}",
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in re.findall(r"\{([a-z_]+)\}", path)
            ]
            + [
                {
                    "name": q.name,
                    "in": "query",
                    "required": False,
                    "schema": q.schema,
                    "description": q.description,
                }  # fmt: skip
                for q in info.query
            ],
            "responses": _responses(info, declared),
        }
        if declared == "public":
            operation["security"] = []
        elif declared is not None:
            operation["description"] = f"Needs the `{declared.value}` permission."
        if info.body is not None:
            name = info.body.__name__
            schema = info.body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[name] = schema
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                },
            }
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "vxs_… API key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "voxsouth_session"},
            },
        },
        "security": [{"apiKey": []}, {"session": []}],
    }


def _responses(info: Doc, declared: object) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "Success"}
    if info.status != 204:
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    codes = set(info.errors) | {400, 413, 429}
    if declared != "public":
        codes |= {401, 403}
    if info.body is not None:
        codes |= {415, 422}
    responses: dict[str, Any] = {str(info.status): success}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for code in sorted(codes):
        responses[str(code)] = {"description": _ERROR_TEXT.get(code, "Error"), "content": error}
    return responses


class OpenApiRoutes:
    def __init__(self, title: str, version: str) -> None:
        self._title = title
        self._version = version

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/openapi.json", self.spec),
            web.get("/api/docs", self.page),
        ]

    @public
    async def spec(self, request: web.Request) -> web.Response:
        return web.json_response(build(request.app, title=self._title, version=self._version))

    @public
    async def page(self, request: web.Request) -> web.Response:
        spec = build(request.app, title=self._title, version=self._version)
        rows = []
        for path, methods in spec["paths"].items():
            for method, op in methods.items():
                needs = op.get("description", "Public.")
                rows.append(
                    f"<tr><td><code>{method.upper()}</code></td><td><code>"
                    f"{html.escape(path)}</code></td><td>{html.escape(op['summary'])}</td>"
                    f"<td>{html.escape(needs)}</td></tr>"
                )
        body = (
            "<!doctype html><html lang=en><meta charset=utf-8>"
            f"<title>{html.escape(self._title)} API</title>"
            "<style>body{font:15px system-ui;margin:2em}td{padding:.3em .8em;"
            "border-bottom:1px solid #ddd}</style>"
            f"<h1>{html.escape(self._title)} API</h1>"
            "<p>Machine-readable: <a href=/api/openapi.json>/api/openapi.json</a> (OpenAPI 3.1). "
            "Authenticate with <code>Authorization: Bearer vxs_…</code> or a session from "
            "<code>POST /api/auth/login</code> (then send <code>X-CSRF-Token</code> on writes)."
            "</p><table>" + "".join(rows) + "</table></html>"
        )
        return web.Response(text=body, content_type="text/html")
