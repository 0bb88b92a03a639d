from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DataloopConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "dataloop"
    verbose_name = _("Data loop")
