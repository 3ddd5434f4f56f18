"""API routes of this app, mounted under /api/v1/."""

from django.urls import URLPattern, URLResolver
from rest_framework.routers import SimpleRouter

from catalog.api import LanguageModelViewSet, PinChangeViewSet, PinViewSet, ProviderViewSet

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("providers", ProviderViewSet, basename="provider")
router.register("models", LanguageModelViewSet, basename="model")
router.register("pins", PinViewSet, basename="pin")
router.register("pin-changes", PinChangeViewSet, basename="pin-change")

urlpatterns: list[URLPattern | URLResolver] = [*router.urls]
