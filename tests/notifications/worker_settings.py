"""Settings for the Celery worker that test_celery_integration starts: the test settings, except that
email goes to files the test reads (EMAIL_FILE_PATH), and on Redis a killed worker's unacknowledged task
comes back after a few seconds (OPSTEAM_VISIBILITY_TIMEOUT) rather than after an hour."""

from opsteam.settings.test import *  # noqa: F403
from opsteam.settings.test import CELERY_BROKER_TRANSPORT_OPTIONS, REDIS_URL, env

EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH")
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": env.int("OPSTEAM_VISIBILITY_TIMEOUT", default=3600),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
