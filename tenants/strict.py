"""Serializers that refuse what they do not know: a field the API does not have is a 400 naming
it, never dropped in silence (a client's typo, e.g. `input_price_per_million` for
`input_price`, would otherwise become wrong data: an unpriced model, answered 201).

Every API serializer derives from `Serializer` or `ModelSerializer` here (tenants/tests/
test_strict.py checks every one in the project). Known read-only fields are accepted and ignored,
so a client may send back what it read. `aliases` names another API's word for one of ours:
OpenAI's `max_tokens` for our `max_output_tokens`. An alias that means exactly the same is
accepted as that field (`accept`), one that only looks alike is refused naming ours.

The gateway's provider-shaped endpoints (/v1/chat/completions, ...) are not DRF serializers and
pass unknown fields through to the provider, as providers add fields all the time.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError
from rest_framework.metadata import SimpleMetadata


class StrictMixin:
    """`to_internal_value` refuses names that are not fields of the serializer. A read-only field
    whose default is None (`source="agent.name", default=None`: no agent, no name) says it may be
    null, so the OpenAPI schema promises what the API answers."""

    # another API's name -> (our field, True when it means exactly the same and is accepted)
    aliases: ClassVar[dict[str, tuple[str, bool]]] = {}
    # a name this serializer refuses with a message of its own (a field that cannot change)
    refusals: ClassVar[dict[str, str]] = {}

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields: dict[str, serializers.Field[Any, Any, Any, Any]] = super().get_fields()  # type: ignore[misc]
        for field in fields.values():
            if field.read_only and field.default is None:
                field.allow_null = True
        return fields

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = self._resolve(data)
        return super().to_internal_value(data)  # type: ignore[misc]

    def _resolve(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        fields: Mapping[str, Any] = self.fields  # type: ignore[attr-defined]
        unknown = [name for name in data if name not in fields]
        broken = [name for name, value in data.items() if _unpaired_surrogate(value)]
        if not unknown and not broken:
            return data
        errors: dict[str, list[str]] = {
            name: ["Contains an unpaired UTF-16 surrogate (such as \\ud800): not valid Unicode text."]
            for name in broken
        }
        renamed = dict(data)
        for name in unknown:
            ours, accepted = self.aliases.get(name, ("", False))
            if name in self.refusals:
                errors[name] = [self.refusals[name]]
            elif ours and accepted and ours not in data:
                renamed[ours] = renamed.pop(name)
            elif ours and accepted:
                errors[name] = [f"Give `{ours}` or `{name}`, not both."]
            elif ours:
                errors[name] = [f"Unknown field; this API's is `{ours}`."]
            elif close := difflib.get_close_matches(name, _writable(fields), n=1, cutoff=0.8):
                errors[name] = [f"Unknown field; did you mean `{close[0]}`?"]
            else:
                errors[name] = [f"Unknown field; the fields are: {', '.join(_writable(fields)) or 'none'}."]
        if errors:
            raise serializers.ValidationError(errors)
        return renamed


# A lone surrogate: JSON allows the escape `\\ud800` unpaired, which decodes to a str that cannot
# be encoded as UTF-8, so PostgreSQL cannot store it (a decoded pair is one code point, not two).
# Refused here as bad input; trace ingestion (traces.ingest) replaces it in payloads.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _unpaired_surrogate(value: Any, depth: int = 0) -> bool:
    """Whether `value` holds a string with a lone surrogate, at any depth (up to 64 levels)."""
    if isinstance(value, str):
        return not value.isascii() and LONE_SURROGATE.search(value) is not None
    if depth > 64:
        return False
    if isinstance(value, Mapping):
        return any(_unpaired_surrogate(k, depth + 1) or _unpaired_surrogate(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_unpaired_surrogate(v, depth + 1) for v in value)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, with nesting deeper than Python's parser recurses answered as a parse
    error (400) instead of a RecursionError (500)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None


def _writable(fields: Mapping[str, Any]) -> list[str]:
    return [name for name, field in fields.items() if not getattr(field, "read_only", False)]


class Serializer(StrictMixin, serializers.Serializer):
    pass


class ModelSerializer(StrictMixin, serializers.ModelSerializer):
    pass


class OptionsMetadata(SimpleMetadata):
    """What OPTIONS answers: the view's name, description, renderers and parsers, not its fields.
    DRF's default describes the serializer's fields by cloning the request without the key's tenant
    and calling get_object, which failed (500) on tenant-scoped views; the OpenAPI schema is where
    the fields are described."""

    def determine_metadata(self, request: Any, view: Any) -> dict[str, Any]:
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
        }


class BlankableURLFieldExtension(OpenApiSerializerFieldExtension):
    """A URLField that allows blank (a model's `URLField(blank=True)`: "" for none) is "a URI or
    empty" in the schema; drf-spectacular's `format: uri` alone refuses the "" the API answers."""

    target_class = "rest_framework.fields.URLField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        if _may_be_blank(self.target) and schema.get("format") == "uri":
            # No `type` at the top: drf-spectacular would add `format: uri` there from the validator.
            uri = {key: schema[key] for key in ("type", "format", "maxLength") if key in schema}
            return {"anyOf": [uri, {"type": "string", "maxLength": 0}]}
        return schema


def _may_be_blank(field: Any) -> bool:
    """Whether the field takes or answers "": it allows blank, or it is a read-only copy of a model
    field with blank=True (DRF drops allow_blank from read-only fields)."""
    if getattr(field, "allow_blank", False):
        return True
    model = getattr(getattr(field.parent, "Meta", None), "model", None)
    if not field.read_only or model is None or "." in (field.source or ""):
        return False
    try:
        return bool(model._meta.get_field(field.source).blank)
    except FieldDoesNotExist:
        return False


def refuse_unknown_in_schema(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: request bodies say `additionalProperties: false`, as
    the serializers behind them refuse unknown fields (aliases are in the fields' descriptions)."""
    schemas = result.get("components", {}).get("schemas", {})
    names: set[str] = set()
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for media in (operation.get("requestBody") or {}).get("content", {}).values():
                ref = (media.get("schema") or {}).get("$ref", "")
                if ref.startswith("#/components/schemas/"):
                    names.add(ref.rsplit("/", 1)[-1])
    for name in names:
        schema = schemas.get(name)
        if isinstance(schema, dict) and schema.get("type") == "object":
            schema.setdefault("additionalProperties", False)
    return result
