"""Websocket routes."""

from django.urls import path

from console.consumers import LiveConsumer

websocket_urlpatterns = [
    path("ws/t/<slug:tenant_slug>/live/", LiveConsumer.as_asgi()),
]
