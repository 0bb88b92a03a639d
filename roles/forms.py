"""Forms of the team settings pages for members and their roles."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from opsteam.exceptions import InvalidInput

from .backends import LOCKED_ATTRIBUTE, locked_message, minutes_left
from .models import Role


def add_service_errors(
    form: forms.Form, exc: InvalidInput, *, rename: Mapping[str, str] | None = None
) -> None:
    """Put a service's InvalidInput errors next to the fields they name (after `rename`), the rest above
    the form."""
    for name, messages in exc.errors.items():
        field = (rename or {}).get(name, name)
        for message in messages:
            form.add_error(field if field in form.fields else None, message)


def roles_field(**kwargs: Any) -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=_("Roles"),
        choices=Role.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one role.")},
        **kwargs,
    )


class MemberAddForm(forms.Form):
    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        help_text=_("The person needs an opsteam account already."),
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}
        ),
    )
    roles = roles_field()

    def add_service_errors(self, exc: InvalidInput) -> None:
        # The services call the person "user"; on this form it is the username.
        add_service_errors(self, exc, rename={"user": "username"})


class MemberRolesForm(forms.Form):
    """One member's roles: a row of the members table, posted on its own. The checkboxes sit in the
    table's cells and name their row's form element with the `form` attribute."""

    roles = roles_field()

    def __init__(self, *args: Any, membership_id: int, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"id_m{membership_id}_%s")
        super().__init__(*args, **kwargs)
        self.form_id = f"member-{membership_id}"
        self.fields["roles"].widget.attrs["form"] = self.form_id

    def add_service_errors(self, exc: InvalidInput) -> None:
        add_service_errors(self, exc)


class ThrottledAuthenticationForm(AuthenticationForm):
    """The login form: a username locked by the sign-in throttle is told so, and for how long."""

    def get_invalid_login_error(self) -> ValidationError:
        locked_until = getattr(self.request, LOCKED_ATTRIBUTE, None)
        if locked_until is None:
            return super().get_invalid_login_error()
        seconds = (locked_until - timezone.now()).total_seconds()
        return ValidationError(locked_message(minutes_left(seconds)), code="locked")
