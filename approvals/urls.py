"""API routes of this app, mounted under /api/v1/."""

from django.urls import URLPattern, URLResolver, re_path
from rest_framework.routers import SimpleRouter

from approvals import api

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("approvals", api.ApprovalViewSet, basename="approval")
router.register("approval-rules", api.ApprovalRuleViewSet, basename="approval-rule")
router.register("autonomy", api.AutonomyGrantViewSet, basename="autonomy-grant")

urlpatterns: list[URLPattern | URLResolver] = [
    # The detail GET is the async long-poll view, ahead of the router (which has no retrieve).
    re_path(r"^approvals/(?P<pk>[^/.]+)/?$", api.approval_detail, name="approval-detail"),
    *router.urls,
]
