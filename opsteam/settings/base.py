"""Settings shared by every environment; the other modules override little."""

from datetime import timedelta
from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

# Runtime files (SQLite database, embedded broker queues, uploads) live here, ignored by git.
DATA_DIR = Path(env("OPSTEAM_DATA_DIR", default=str(BASE_DIR / "var")))

# Each settings module decides the key: production demands it from the environment.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "roles",
    "worktime",
    "notifications",
    "workflows",
    "history",
    "analytics",
    "dataloop",
    "perf",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "opsteam.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "opsteam.limits.RequestSizeLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "opsteam.middleware.UserLanguageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "opsteam.urls"
WSGI_APPLICATION = "opsteam.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "notifications.views.unread",
                "opsteam.context.navigation",
            ],
        },
    },
]

# SQLite (WAL, IMMEDIATE transactions so writers queue instead of failing) unless DATABASE_URL is set.
SQLITE_PATH = DATA_DIR / "opsteam.sqlite3"
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL",
        default=f"sqlite:///{SQLITE_PATH}",
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    # JIT compilation costs more than it saves on these queries: the analytics pipeline's estimates
    # cross the JIT threshold and PostgreSQL spent ~0.6 s compiling a query that runs in 0.1 s.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off -c work_mem=32MB"
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Every sign-in (login form, admin, API token) goes through the throttle in roles.logins.
AUTHENTICATION_BACKENDS = ["roles.backends.ThrottledModelBackend"]
OPSTEAM_LOGIN_FAILURE_LIMIT = env.int("OPSTEAM_LOGIN_FAILURE_LIMIT", default=5)
OPSTEAM_LOGIN_COOL_OFF = timedelta(minutes=env.int("OPSTEAM_LOGIN_COOL_OFF_MINUTES", default=15))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", _("English")),
    ("zh-hans", _("Simplified Chinese")),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True
DEFAULT_TEAM_TIME_ZONE = "Asia/Shanghai"

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# htmx reads the token from the page (hx-headers), not from the cookie; Django's default is kept so
# that the admin and DRF's browsable forms work unchanged.
CSRF_COOKIE_HTTPONLY = False
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy (opsteam.middleware.ContentSecurityPolicyMiddleware): only the app's own
# scripts, styles, images and fonts; no inline script or style, no frames, no plugins.
OPSTEAM_CSP: dict[str, list[str]] = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
# Pages by URL prefix whose third-party templates need more (the API docs: Swagger UI and Redoc put
# their start-up code inline, and Redoc runs a worker from a blob:). Still nothing from other origins.
OPSTEAM_CSP_PATH_OVERRIDES: dict[str, dict[str, list[str]]] = {
    "/api/docs/": {
        "script-src": ["'self'", "'unsafe-inline'"],
        "style-src": ["'self'", "'unsafe-inline'"],
    },
    "/api/redoc/": {
        "script-src": ["'self'", "'unsafe-inline'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "worker-src": ["'self'", "blob:"],
    },
}

DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# REST API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so that an anonymous request is answered 401 with a WWW-Authenticate header.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "opsteam.api.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "opsteam.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"token": env("OPSTEAM_TOKEN_THROTTLE", default="10/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "opsteam API",
    "DESCRIPTION": "Requirements moving through the ops iteration loop: propose, design, build, "
    "instrument, analyze, optimize.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "roles.models.Role.choices",
        "RequirementOutcomeEnum": "workflows.models.Outcome.choices",
        "LoopOutcomeEnum": "workflows.models.LoopOutcome.choices",
        "NotificationKindEnum": "notifications.models.Kind.choices",
        "EventKindEnum": "workflows.models.EventKind.choices",
        "TrackingStatusEnum": "workflows.models.TrackingStatus.choices",
    },
}

# Celery: Redis when REDIS_URL is set, otherwise kombu's filesystem transport, which needs no server
# and works across the web, worker and beat processes of one machine.
REDIS_URL = env("REDIS_URL", default="")
CELERY_QUEUE_DIR = DATA_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_TIMEOUT = 3
# Publishing gives up quickly when the broker is down: the request still succeeds, the work is in the
# database, and the next sweep queues it again.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_BEAT_SCHEDULE = {
    "sla-sweep": {"task": "workflows.tasks.sla_sweep", "schedule": 300.0},
    "due-sweep": {"task": "workflows.tasks.due_sweep", "schedule": 900.0},
    "digest-sweep": {"task": "workflows.tasks.digest_sweep", "schedule": 300.0},
    "deliveries-sweep": {"task": "notifications.tasks.deliveries_sweep", "schedule": 60.0},
    # Watches are evaluated when observations arrive; this sweep catches what a lost hint missed and
    # the days that pass without data. Evaluating twice changes nothing.
    "watch-sweep": {"task": "dataloop.tasks.watch_sweep", "schedule": 3600.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(CELERY_QUEUE_DIR / "beat-schedule")

# Email: SMTP from the environment (EMAIL_URL, e.g. smtp+tls://user:pw@smtp.example.com:587); the local
# settings print mail to the console.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="smtp://localhost:25")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="opsteam <opsteam@localhost>")
EMAIL_TIMEOUT = 10
# Absolute links in email and chat messages.
OPSTEAM_BASE_URL = env("OPSTEAM_BASE_URL", default="http://127.0.0.1:8000")
# Called with team= inside the transaction that creates a team (workflows.services.team_setup).
OPSTEAM_TEAM_SETUP_HOOKS = ["dataloop.services.metrics_prefill"]
# Called with team=, people=, now=, tz= inside the transaction of workflows.demo.seed_demo, after the demo
# requirements have played out, to add the other apps' demo data.
OPSTEAM_DEMO_HOOKS = ["dataloop.demo.seed"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("OPSTEAM_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
