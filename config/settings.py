"""Settings, driven by the environment. Every variable is listed in README.md with its default."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("AOC_VAR_DIR", BASE_DIR / "var"))


def _env(name: str) -> str | None:
    """The variable's value, stripped; None when unset or empty (the default applies)."""
    value = os.environ.get(name, "").strip()
    return value or None


def env_bool(name: str, default: bool) -> bool:
    """true/yes/on/1 or false/no/off/0 (any case); anything else is refused, naming the variable."""
    value = _env(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (1/0, yes/no, on/off), not {value!r}.")


def env_int(name: str, default: int) -> int:
    """A whole number; a value that is not one is refused, naming the variable."""
    value = _env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None


def env_float(name: str, default: float) -> float:
    """A number (decimals allowed); a value that is not one is refused, naming the variable."""
    value = _env(name)
    if value is None:
        return float(default)
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}.") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name} must be a finite number, not {value!r}.")
    return number


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept in var/ (development)."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    path.write_text(key)
    path.chmod(0o600)
    return key


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "channels",
    "axes",
    "tenants",
    "catalog",
    "agents",
    "budgets",
    "traces",
    "guardrails",
    "approvals",
    "evals",
    "gateway",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tenants.middleware.TenantMiddleware",
    # After TenantMiddleware: the tenant's time zone for the request, flash messages on htmx answers.
    "console.middleware.ConsoleMiddleware",
    # Last, so a lockout answers after authentication has been attempted.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.console",
            ],
        },
    },
]

# --- Data stores -------------------------------------------------------------------------------

if not os.environ.get("DATABASE_URL"):
    raise RuntimeError(
        "DATABASE_URL is not set. `make run` and `make test` start an embedded PostgreSQL and set it; "
        "otherwise point it at PostgreSQL, e.g. postgresql://postgres@127.0.0.1:5432/aoc"
    )
DATABASES = {
    "default": dj_database_url.parse(
        os.environ["DATABASE_URL"],
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise RuntimeError("DATABASE_URL must point at PostgreSQL: it is the only supported database.")
# Django's backend, plus the tenant context of row-level security on every cursor (tenants/rls.py).
DATABASES["default"]["ENGINE"] = "tenants.postgresql"
# Row-level security (tenants/rls.py): migrate puts a policy on every tenant table and creates this
# role; with TENANT_RLS on (the default), the app's connections take the role, so the policies bind them.
DATABASE_APP_ROLE = os.environ.get("DATABASE_APP_ROLE", "aoc_app")
TENANT_RLS = env_bool("TENANT_RLS", True)
DATABASES["default"].setdefault("TEST", {})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if not os.environ.get("REDIS_URL"):
    raise RuntimeError(
        "REDIS_URL is not set. `make run` and `make test` start an embedded Redis and set it; "
        "otherwise point it at Redis, e.g. redis://127.0.0.1:6379/0"
    )
REDIS_URL = os.environ["REDIS_URL"]


def celery_broker_url(redis_url: str) -> str:
    """Kombu spells a Unix-socket Redis as redis+socket:///path?virtual_host=N."""
    parts = urlsplit(redis_url)
    if parts.scheme != "unix":
        return redis_url
    db = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("db", "0")
    return f"redis+socket://{unquote(parts.path)}?virtual_host={db}"


CACHES = {
    "default": {
        # Django's RedisCache with one client per process, not one per asgiref context (see there).
        "BACKEND": "config.redis_pool.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "aoc"),
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py's async pool refuses a command past 100 connections at once (MaxConnectionsError):
            # a burst of approval long-polls or live pages needs more (CHANNEL_LAYER_MAX_CONNECTIONS).
            "hosts": [{"address": REDIS_URL, "max_connections": env_int("CHANNEL_LAYER_MAX_CONNECTIONS", 1000)}],
            "prefix": os.environ.get("CACHE_KEY_PREFIX", "aoc") + ":asgi",
        },
    }
}

# --- Celery ------------------------------------------------------------------------------------

CELERY_BROKER_URL = celery_broker_url(REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "tenants.tasks.heartbeat", "schedule": 15.0},
    # Re-queue running runs whose worker died (its lease expired) when the broker did not redeliver.
    "requeue-stuck-runs": {
        "task": "agents.tasks.requeue_stuck_runs",
        "schedule": env_float("RUN_REQUEUE_INTERVAL_SECONDS", 30),
    },
    # Delete traces past each tenant's retention, in bounded batches.
    "expire-traces": {
        "task": "traces.tasks.expire_traces",
        "schedule": env_float("TRACE_RETENTION_INTERVAL_SECONDS", 3600),
    },
    # Release open budget reservations past their TTL, so a crashed client never blocks a budget for long.
    "expire-budget-reservations": {
        "task": "budgets.tasks.expire_stale_reservations",
        "schedule": env_float("BUDGET_EXPIRE_INTERVAL_SECONDS", 15),
    },
    # Approvals: expire requests nobody decided in time (recorded `expired`), then escalate the slow ones.
    "expire-approvals": {
        "task": "approvals.tasks.expire_due",
        "schedule": env_float("APPROVAL_SWEEP_INTERVAL_SECONDS", 5),
    },
    "escalate-approvals": {
        "task": "approvals.tasks.escalate_due",
        "schedule": env_float("APPROVAL_SWEEP_INTERVAL_SECONDS", 5),
    },
    # Evals: re-send cases whose worker died and start pending ones; score sampled production runs.
    "evals-sweep": {
        "task": "evals.tasks.sweep",
        "schedule": env_float("EVAL_SWEEP_INTERVAL_SECONDS", 30),
    },
    "online-evals": {
        "task": "evals.tasks.online_evals",
        "schedule": env_float("ONLINE_EVAL_INTERVAL_SECONDS", 300),
    },
}

# How many eval cases of one tenant run at once (each is an agent run on a worker).
EVAL_CONCURRENCY_PER_TENANT = env_int("EVAL_CONCURRENCY_PER_TENANT", 4)

# The first retry delay of an approval's callback or escalation webhook (doubled at each retry).
APPROVAL_WEBHOOK_BACKOFF_SECONDS = env_float("APPROVAL_WEBHOOK_BACKOFF_SECONDS", 2)

# How long a budget reservation holds its worst-case cost before the beat task releases it.
BUDGET_RESERVATION_TTL_SECONDS = env_int("BUDGET_RESERVATION_TTL_SECONDS", 120)
# Reservations and settlements made at once by several threads of a process go in one statement
# and one commit (budgets/combine.py); false: each alone.
BUDGETS_COMBINE = env_bool("BUDGETS_COMBINE", True)
# A gateway call (a long stream, a slow provider) keeps its budget hold past the TTL while it
# runs, up to this long (gateway.keeper).
GATEWAY_MAX_CALL_SECONDS = env_int("GATEWAY_MAX_CALL_SECONDS", 3600)
# How long the gateway's recorder waits for more calls before writing a batch of them (their
# settlements, spans and request-log rows): a longer wait writes bigger batches for less CPU a
# call but a longer burst of it, which calls in flight wait behind; a call's spans and log row
# appear, and its budget hold is settled, up to that much later.
GATEWAY_RECORDER_LINGER_SECONDS = env_float("GATEWAY_RECORDER_LINGER_SECONDS", 0.05)

# --- Authentication and security ---------------------------------------------------------------

AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "console:login"

AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_float("AXES_COOLOFF_HOURS", 0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# Secure cookies by default; plain-HTTP development (make run) turns them off explicitly.
SECURE_COOKIES = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 12)
SESSION_ENGINE = "console.sessions"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content Security Policy (Django 6): no inline script without the per-request nonce, nothing
# from another origin. Websockets connect back to the same origin.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "font-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}

# --- Internationalisation, static files, email -------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Production runs `collectstatic` (hashed, compressed files in STATIC_ROOT). Until it has, files
# are served straight from the app and vendor folders (development, tests), so nothing breaks.
STATIC_COLLECTED = (STATIC_ROOT / "staticfiles.json").exists() and not env_bool("STATIC_USE_FINDERS", False)
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_COLLECTED
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_COLLECTED
# make run sets it: static files edited while it runs are served fresh, with DEBUG off.
WHITENOISE_AUTOREFRESH = env_bool("WHITENOISE_AUTOREFRESH", DEBUG)

# Invitations and notifications. The console backend prints mail to the log (development);
# production sets EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and EMAIL_HOST etc.
MAILERS = {
    "default": {
        "BACKEND": os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"),
        "OPTIONS": {
            key.lower(): value
            for key, value in {
                "HOST": os.environ.get("EMAIL_HOST"),
                "PORT": env_int("EMAIL_PORT", 0) or None,
                "USERNAME": os.environ.get("EMAIL_HOST_USER"),
                "PASSWORD": os.environ.get("EMAIL_HOST_PASSWORD"),
                "USE_TLS": env_bool("EMAIL_USE_TLS", False) or None,
            }.items()
            if value is not None
        }
        if os.environ.get("EMAIL_HOST")
        else {},
    }
}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "console@localhost")
CONSOLE_BASE_URL = os.environ.get("CONSOLE_BASE_URL", "http://127.0.0.1:8000")

# --- REST API ----------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.permissions.HasApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": os.environ.get("API_THROTTLE_RATE", "1200/min")},
    "DEFAULT_PAGINATION_CLASS": "tenants.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["tenants.strict.JSONParser"],
    "EXCEPTION_HANDLER": "tenants.api_errors.api_exception_handler",
    "DEFAULT_METADATA_CLASS": "tenants.strict.OptionsMetadata",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Agent Operations Console API",
    "DESCRIPTION": "REST API for agent clients. Authenticate with `Authorization: Bearer <api key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "approvals.schema.add_long_poll",
        "tenants.strict.refuse_unknown_in_schema",
    ],
    # Several models have a `status` or `kind`: name each enum after its model, not a hash.
    "ENUM_NAME_OVERRIDES": {
        "ProviderKindEnum": "catalog.models.Provider.Kind",
        "PinChangeStatusEnum": "catalog.models.PinChange.Status",
        "RunStatusEnum": "agents.models.Run.Status",
        "StepKindEnum": "agents.models.Step.Kind",
        "ToolExecutionStatusEnum": "agents.models.ToolExecution.Status",
        "DemoOrderStatusEnum": "agents.models.DemoOrder.Status",
        "ApprovalStatusEnum": "approvals.models.ApprovalRequest.Status",
        "RiskEnum": "approvals.models.Risk",
        "TenantStatusEnum": "tenants.models.Tenant.Status",
        "ReservationStatusEnum": "budgets.models.Reservation.Status",
        "LedgerEntryKindEnum": "budgets.models.LedgerEntry.Kind",
        "SpanStatusEnum": "traces.models.SpanStatus",
        "GuardrailStageEnum": "guardrails.models.Stage",
        "EvalRunStatusEnum": "evals.models.EvalRun.Status",
        "EvalResultStatusEnum": "evals.models.EvalResult.Status",
    },
}

# --- The console's own knobs -------------------------------------------------------------------

# Fernet keys (newest first) for secrets at rest; empty derives one from SECRET_KEY.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", "")
# Hosts a tool webhook may reach although they resolve to internal addresses (tests: 127.0.0.1).
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", "")
# Hosts a provider's base URL may name although they resolve to internal addresses, or over plain
# http: self-hosted model servers (vLLM, Ollama) on a private network. Tests: 127.0.0.1.
PROVIDER_ALLOWED_HOSTS = env_list("PROVIDER_ALLOWED_HOSTS", "")
# Approvals long-poll: waiting requests one API key may hold open per web process.
APPROVAL_MAX_WAITERS_PER_KEY = env_int("APPROVAL_MAX_WAITERS_PER_KEY", 100)
# The largest request body the gateway (/v1/chat/completions, …) reads: conversations with images are big.
GATEWAY_MAX_BODY_BYTES = env_int("GATEWAY_MAX_BODY_BYTES", 20 * 1024 * 1024)
# A stream held for a reviewer's decision on a tool call sends an SSE comment this often (gateway.holds).
GATEWAY_APPROVAL_KEEPALIVE_SECONDS = env_float("GATEWAY_APPROVAL_KEEPALIVE_SECONDS", 10)
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60  # last_used_at is written at most this often per key
INVITATION_TTL_DAYS = env_int("INVITATION_TTL_DAYS", 7)
# A worker executing a run renews its lease every third of this; a run whose lease expired lost
# its worker and is resumed by another (agents/runtime.py).
RUN_LEASE_SECONDS = env_float("RUN_LEASE_SECONDS", 30)


def _one_line_forbidden(record: logging.LogRecord) -> bool:
    """A 403 is an answer, not a fault: Django logs it with the PermissionDenied's traceback, which
    is noise (issue 19). Keep the line, drop the traceback."""
    if getattr(record, "status_code", None) == 403:
        record.exc_info = None
        record.exc_text = None
    return True


# The periodic tasks' "Sending due task", "received" and "succeeded" lines (INFO) were 29 % of
# `make run`'s log, every few seconds; their warnings and errors are kept. LOG_PERIODIC_TASKS=true shows them.
_PERIODIC_TASKS = tuple(sorted({str(entry["task"]) for entry in CELERY_BEAT_SCHEDULE.values()}))


def _quiet_periodic_tasks(record: logging.LogRecord) -> bool:
    if record.levelno > logging.INFO:
        return True
    message = record.getMessage()
    return not any(task in message for task in _PERIODIC_TASKS)


_periodic_filters = [] if env_bool("LOG_PERIODIC_TASKS", False) else ["quiet_periodic_tasks"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {
        "one_line_forbidden": {"()": lambda: _one_line_forbidden},
        "quiet_periodic_tasks": {"()": lambda: _quiet_periodic_tasks},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO").upper()},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "django.request": {"filters": ["one_line_forbidden"]},
        # Logger filters see only their own logger's records: the three that write the chatter.
        "celery.beat": {"filters": _periodic_filters},
        "celery.worker.strategy": {"filters": _periodic_filters},
        "celery.app.trace": {"filters": _periodic_filters},
    },
}
CSRF_FAILURE_VIEW = "console.views.errors.csrf_failure"
