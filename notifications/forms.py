"""Forms of the team settings: the team's chat webhooks."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import URLValidator
from django.utils.translation import gettext_lazy as _

from opsteam.exceptions import InvalidInput
from roles.forms import add_service_errors

from .models import Kind, WebhookEndpoint

# Kinds a new webhook posts: the ones a whole team acts on. Reminders for one person stay personal.
DEFAULT_KINDS = [Kind.STAGE_OVERDUE, Kind.ESCALATION]


class HttpURLField(forms.URLField):
    # The service and the senders speak http(s) only; Django's URLField would also take ftp.
    default_validators = [URLValidator(schemes=["http", "https"])]


class WebhookForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100, help_text=_("E.g. the chat group it posts to."))
    url = HttpURLField(
        label=_("Webhook URL"),
        max_length=500,
        assume_scheme="https",
        help_text=_(
            "The robot's address, as the chat app shows it. It holds the robot's token: keep it secret."
        ),
        widget=forms.URLInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    format = forms.ChoiceField(label=_("Format"), choices=WebhookEndpoint.Format.choices)
    secret = forms.CharField(
        label=_("Signing secret"),
        max_length=200,
        required=False,
        strip=True,
        help_text=_("Only for DingTalk and Feishu robots with signing (加签) turned on."),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    kinds = forms.MultipleChoiceField(
        label=_("Messages posted"),
        choices=Kind.choices,
        initial=DEFAULT_KINDS,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one kind of message.")},
    )
    active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def add_service_errors(self, exc: InvalidInput) -> None:
        add_service_errors(self, exc)

    def service_fields(self) -> dict[str, Any]:
        """The fields as webhook_create / webhook_update take them. Call after is_valid()."""
        data = self.cleaned_data
        fields = {name: data[name] for name in ("name", "url", "format", "kinds", "active")}
        if data["secret"]:
            fields["secret"] = data["secret"]
        return fields


class WebhookEditForm(WebhookForm):
    """The secret is never sent back to the browser: empty keeps it, the checkbox removes it."""

    clear_secret = forms.BooleanField(label=_("Remove the signing secret"), required=False)

    def __init__(self, *args: Any, has_secret: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.has_secret = has_secret
        if has_secret:
            self.fields["secret"].help_text = _("A secret is set. Leave this empty to keep it.")
        else:
            del self.fields["clear_secret"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("clear_secret") and data.get("secret"):
            self.add_error("clear_secret", _("Either enter a new secret or remove it, not both."))
        return data

    def service_fields(self) -> dict[str, Any]:
        fields = super().service_fields()
        if self.cleaned_data.get("clear_secret"):
            fields["secret"] = ""
        return fields
