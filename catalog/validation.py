"""Exact model versions only: floating names are refused before they can be pinned."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# A dated snapshot: gpt-4o-2024-08-06, claude-sonnet-4-5-20250929, o3-mini-2025-01-31.
_DATED = re.compile(r"(?:-|_)(20\d{2}-\d{2}-\d{2}|20\d{6})$")
_FLOATING_SUFFIXES = ("-latest", ":latest", "-preview", "-beta")


def validate_exact_model(*, hosted_vendor: str | None, model_id: str, revision: str) -> None:
    """Raise ValidationError (naming the field) unless `model_id` names one exact model version.

    - Models hosted by OpenAI or Anthropic must be dated snapshots, never `-latest` or a family name.
    - Self-hosted models (any other endpoint) need a `revision`: a weights tag or digest.
    - The demo provider (`hosted_vendor == "demo"`) follows the dated-snapshot rule too.
    """
    model_id = model_id.strip()
    if not model_id:
        raise ValidationError({"model_id": "Give the provider's exact model id."})
    lowered = model_id.lower()
    if any(lowered.endswith(s) for s in _FLOATING_SUFFIXES) or lowered in {"latest", "default"}:
        raise ValidationError({"model_id": f"{model_id!r} is a floating name; pin an exact, dated version."})
    if hosted_vendor in {"openai", "anthropic", "demo"}:
        if not _DATED.search(model_id):
            raise ValidationError(
                {
                    "model_id": f"{model_id!r} is not a dated snapshot; {hosted_vendor} models must be pinned "
                    "as e.g. gpt-4o-2024-08-06 or claude-sonnet-4-5-20250929."
                }
            )
        return
    revision = revision.strip()
    if not revision or revision.lower() in {"latest", "main", "master", "head"}:
        raise ValidationError(
            {"revision": "A self-hosted model needs its revision: a weights tag or digest (not 'latest' or 'main')."}
        )
