"""ASGI entry point: websockets (and, under `make run`, every HTTP request too) under uvicorn."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from approvals.longpoll import LongPollRouter  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from gateway.asgi import GatewayRouter  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Model calls through the gateway and approval long-polls wait outside Django's partly
        # synchronous middleware (see gateway.asgi and approvals.longpoll).
        "http": GatewayRouter(LongPollRouter(django_asgi_app)),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
