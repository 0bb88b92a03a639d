"""The benchmark (bench/run.py): production settings served over plain HTTP on loopback, with each
response carrying its SQL query count. Never deploy with these."""

import os

# Production insists on both; the benchmark runs on loopback with a throwaway key.
os.environ.setdefault("DJANGO_SECRET_KEY", "opsteam-benchmark-only-not-secret")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1")

from .production import *  # noqa: F403
from .production import MIDDLEWARE, REDIS_URL

ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# Loopback HTTP: no redirect to HTTPS, cookies that travel without TLS, no HSTS.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
SECURE_HSTS_SECONDS = 0
MIDDLEWARE = ["perf.middleware.QueryCountMiddleware", *MIDDLEWARE]
# The benchmark reads the timing tasks' answers back from Redis.
CELERY_RESULT_BACKEND = REDIS_URL
# The benchmark signs in once per run; the production rate would be fine, a rerun within a minute not.
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"token": "100/min"}}  # noqa: F405
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
