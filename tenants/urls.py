"""API routes of the tenancy kernel, mounted under /api/v1/."""

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from tenants import api

router = SimpleRouter()
# Clients write /api/v1/members and /api/v1/members/ alike; both resolve (no redirect that drops a POST).
router.trailing_slash = "/?"
router.register("members", api.MemberViewSet, basename="member")
router.register("api-keys", api.ApiKeyViewSet, basename="api-key")
router.register("audit-events", api.AuditEventViewSet, basename="audit-event")

urlpatterns = [
    re_path(r"^me/?$", api.MeView.as_view(), name="me"),
    *router.urls,
]
