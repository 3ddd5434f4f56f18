"""API routes of this app, mounted under /api/v1/."""

from django.urls import URLPattern, URLResolver
from rest_framework.routers import SimpleRouter

router = SimpleRouter()
router.trailing_slash = "/?"

urlpatterns: list[URLPattern | URLResolver] = [*router.urls]
