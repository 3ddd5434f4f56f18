"""API routes of this app, mounted under /api/v1/."""

from django.urls import URLPattern, URLResolver
from rest_framework.routers import SimpleRouter

from budgets import api

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("budgets", api.BudgetViewSet, basename="budget")
router.register("reservations", api.ReservationViewSet, basename="reservation")

urlpatterns: list[URLPattern | URLResolver] = [*router.urls]
