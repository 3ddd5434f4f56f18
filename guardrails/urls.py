"""API routes of this app, mounted under /api/v1/."""

from django.urls import URLPattern, URLResolver, path
from rest_framework.routers import SimpleRouter

from guardrails import api

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("guardrails/events", api.GuardrailEventViewSet, basename="guardrail-event")
router.register("guardrails/feedback", api.GuardrailFeedbackViewSet, basename="guardrail-feedback")
router.register("guardrails/policies", api.GuardrailPolicyViewSet, basename="guardrail-policy")

urlpatterns: list[URLPattern | URLResolver] = [
    path("guardrails/check", api.GuardrailCheckViewSet.as_view({"post": "create"}), name="guardrail-check"),
    *router.urls,
]
