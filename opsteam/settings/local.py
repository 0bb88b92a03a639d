"""Development on one machine: the README's run command uses these."""

from .base import *  # noqa: F403
from .base import DATA_DIR, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# A fixed, clearly-marked development key; production has no default at all.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="opsteam-local-development-only-not-secret")
DATA_DIR.mkdir(parents=True, exist_ok=True)
EMAIL_BACKEND = env("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
