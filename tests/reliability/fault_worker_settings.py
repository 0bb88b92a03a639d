"""Settings for the Celery workers the fault suite starts: the test settings, with email sent over SMTP
to the suite's local server (FAULT_SMTP_PORT) and the broker's visibility timeout taken from
OPSTEAM_VISIBILITY_TIMEOUT (by default the production hour)."""

from opsteam.settings.test import *  # noqa: F403
from opsteam.settings.test import CELERY_BROKER_TRANSPORT_OPTIONS, env

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = env.int("FAULT_SMTP_PORT")
EMAIL_HOST_USER = ""
EMAIL_HOST_PASSWORD = ""
EMAIL_USE_TLS = False
EMAIL_USE_SSL = False
EMAIL_TIMEOUT = 10
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "visibility_timeout": env.int("OPSTEAM_VISIBILITY_TIMEOUT", default=3600),
}
