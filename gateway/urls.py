"""The gateway's `/v1` routes (mounted at `/v1/` by config/urls.py, beside OTLP's `/v1/traces`)."""

from django.urls import path

from gateway import api

app_name = "gateway"

urlpatterns = [
    path("models", api.models_list, name="models"),
]
