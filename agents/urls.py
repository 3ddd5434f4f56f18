"""API routes of this app, mounted under /api/v1/."""

from django.urls import URLPattern, URLResolver
from rest_framework.routers import SimpleRouter

from agents import api

router = SimpleRouter()
# Clients write /api/v1/runs and /api/v1/runs/ alike; both resolve (no redirect that drops a POST).
router.trailing_slash = "/?"
router.register("tools", api.ToolViewSet, basename="tool")
router.register("agents", api.AgentViewSet, basename="agent")
router.register("runs", api.RunViewSet, basename="run")

urlpatterns: list[URLPattern | URLResolver] = [*router.urls]
