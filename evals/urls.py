"""API routes of this app, mounted under /api/v1/."""

from django.urls import URLPattern, URLResolver
from rest_framework.routers import SimpleRouter

from evals import api

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("evals/suites", api.SuiteViewSet, basename="eval-suite")
router.register("evals/cases", api.CaseViewSet, basename="eval-case")
router.register("evals/runs", api.EvalRunViewSet, basename="eval-run")
router.register("evals/reviews", api.ReviewViewSet, basename="eval-review")
router.register("evals/pin-changes", api.GateViewSet, basename="eval-gate")

urlpatterns: list[URLPattern | URLResolver] = [*router.urls]
