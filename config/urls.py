"""URL wiring: the console, the REST API under /api/v1/, its schema and docs, and the admin."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from console.views import errors

api_v1: list[URLPattern | URLResolver] = [
    path("", include("tenants.urls")),
    path("", include("catalog.urls")),
    path("", include("agents.urls")),
    path("", include("budgets.urls")),
    path("", include("traces.urls")),
    path("", include("guardrails.urls")),
    path("", include("approvals.urls")),
    path("", include("evals.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("v1/", include("traces.otlp_urls")),
    path("v1/", include("gateway.urls")),
    path("api/public/otel/v1/", include("traces.otlp_urls")),  # the Langfuse SDK's OTLP path
    path("admin/", admin.site.urls),
    path("", include("console.urls")),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    return errors.not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    return errors.server_error(request)


def handler403(request: HttpRequest, exception: Exception) -> HttpResponse:
    return errors.forbidden(request, exception)


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    return errors.bad_request(request, exception)
