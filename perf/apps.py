from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PerfConfig(AppConfig):
    """Load generation and benchmark support: `manage.py generate_load` and the floor endpoint."""

    name = "perf"
    verbose_name = _("Performance")
