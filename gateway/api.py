"""The gateway's `/v1` endpoints that need no provider call: `GET /v1/models`, the aliases an API
key with the `gateway` scope may call, each with the exact model it is pinned to. Errors are in
OpenAI's shape (gateway.errors), so the provider SDKs raise their own exception types.

Cost: one SELECT for the key (tenants.authentication.authenticate_key) and one for the pins with
their models and providers. Never refused by a budget: listing models spends nothing.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions

from catalog.selectors import pins_of
from gateway.errors import GatewayError
from tenants.authentication import authenticate_key
from tenants.errors import ServiceError
from tenants.models import ApiKey, Scope


def gateway_key(authorization: str) -> ApiKey:
    """The usable key in an `Authorization: Bearer …` header that holds the `gateway` scope, or a
    GatewayError: 401 for a missing, malformed, unknown, revoked or expired key, 403 for a
    suspended tenant or a key without the scope."""
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise GatewayError(401, "invalid_api_key", "Send the console API key as `Authorization: Bearer <api key>`.")
    try:
        key = authenticate_key(parts[1])
    except exceptions.AuthenticationFailed as exc:
        raise GatewayError(401, "invalid_api_key", str(exc.detail)) from None
    except ServiceError as exc:
        raise GatewayError(exc.status_code, exc.type, exc.message) from None
    if not key.has_scope(Scope.GATEWAY):
        raise GatewayError(403, "insufficient_scope", "This API key lacks the `gateway` scope.")
    return key


def error_response(error: GatewayError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status)
    for name, value in error.headers():
        response[name.decode()] = value.decode()
    return response


def models_list(request: HttpRequest) -> JsonResponse:
    """OpenAI's model list: each alias as a model id, with `aoc.model` the exact version behind it."""
    if request.method != "GET":
        response = error_response(GatewayError(405, "method_not_allowed", "Use GET to list models."))
        response["Allow"] = "GET"
        return response
    try:
        key = gateway_key(request.headers.get("Authorization", ""))
    except GatewayError as error:
        return error_response(error)
    data = [
        {
            "id": pin.alias,
            "object": "model",
            "created": int(pin.updated_at.timestamp()),
            "owned_by": pin.model.provider.name,
            "aoc": {
                "model": pin.model.model_id,
                "provider": pin.model.provider.name,
                "provider_kind": pin.model.provider.kind,
                "priced": pin.model.is_priced,
                "context_window": pin.model.context_window,
                "max_output_tokens": pin.model.max_output_tokens,
            },
        }
        for pin in pins_of(tenant=key.tenant)
    ]
    return JsonResponse({"object": "list", "data": data})
