"""API routes of this app, mounted under /api/v1/."""

from django.urls import URLPattern, URLResolver
from rest_framework.routers import SimpleRouter

from traces import api

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("traces", api.TraceViewSet, basename="trace")
router.register("end-users", api.EndUserViewSet, basename="end-user")

urlpatterns: list[URLPattern | URLResolver] = [*router.urls]
