"""The long-poll `GET /api/v1/approvals/{id}` in the OpenAPI schema.

It is a plain async view (served before Django's middleware under the ASGI server, see
approvals/longpoll.py), so drf-spectacular does not see it; this postprocessing hook adds it next
to the viewset's paths, answering the same `Approval` shape."""

from __future__ import annotations

from typing import Any

PATH = "/api/v1/approvals/{id}/"


def add_long_poll(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("paths", {})[PATH] = {
        "get": {
            "operationId": "approvals_retrieve",
            "summary": "One approval request; `?wait=N` long-polls for its decision",
            "description": (
                "Answers the request's current state. With `wait` (0-60 seconds) the answer is held until "
                "the request leaves `pending` or the time passes, without a thread or database connection "
                "per waiter; the status is 200 either way, so check `status`. Needs a key of the request's "
                "tenant with `approvals:write` or `read`."
            ),
            "tags": ["approvals"],
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
                {
                    "name": "wait",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "number", "minimum": 0, "maximum": 60, "default": 0},
                    "description": "Seconds to wait for a decision.",
                },
            ],
            "security": [{"ApiKey": []}],
            "responses": {
                "200": {
                    "description": "The request",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Approval"}}},
                },
                "400": {"description": "A bad `wait` value"},
                "401": {"description": "No or a bad API key"},
                "403": {"description": "The key lacks the scope"},
                "404": {"description": "No such request in the key's tenant"},
            },
        }
    }
    return result
