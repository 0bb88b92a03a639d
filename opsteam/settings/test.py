"""The test suite: SQLite by default, PostgreSQL when DATABASE_URL is set."""

import os
import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import CELERY_BROKER_TRANSPORT_OPTIONS, DATA_DIR, REDIS_URL, REST_FRAMEWORK, env

SECRET_KEY = env("DJANGO_SECRET_KEY", default="opsteam-test-only-not-secret")
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.locmem.EmailBackend")
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"token": "1000/min"}}

if "OPSTEAM_DATA_DIR" not in os.environ:
    # Tasks that committed tests queue must not land in a developer's var/, where ./run's worker would
    # pick them up: the suite's runtime files go to a folder of their own.
    DATA_DIR = Path(tempfile.gettempdir()) / "opsteam-test-data"
    CELERY_QUEUE_DIR = DATA_DIR / "celery"
    CELERY_BEAT_SCHEDULE_FILENAME = str(CELERY_QUEUE_DIR / "beat-schedule")
    if not REDIS_URL:
        CELERY_BROKER_TRANSPORT_OPTIONS = {
            **CELERY_BROKER_TRANSPORT_OPTIONS,
            "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
            "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
            "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
            "control_folder": str(CELERY_QUEUE_DIR / "control"),
        }
DATA_DIR.mkdir(parents=True, exist_ok=True)
