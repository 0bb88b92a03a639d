"""Domain errors. Services and the engine raise these; opsteam/api.py maps them to HTTP."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"

    def __init__(self, message: str | Promise, *, field: str | None = None) -> None:
        super().__init__(str(message))
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, list[str]]:
        return {self.field or "detail": [str(self.message)]}


class InvalidInput(DomainError):
    """Bad input: one or more fields, each with its messages. Maps to 400."""

    code = "invalid"

    def __init__(self, errors: Mapping[str, Iterable[str]]) -> None:
        self.errors = {name: [str(m) for m in messages] for name, messages in errors.items()}
        name, messages = next(iter(self.errors.items()), ("detail", [""]))
        first = messages[0] if messages else ""
        super().__init__(first if name in ("detail", "non_field_errors") else f"{name}: {first}")

    def as_dict(self) -> dict[str, list[str]]:
        return self.errors


class UnknownStage(DomainError):
    code = "unknown_stage"

    def __init__(self, slug: str, *, field: str = "to") -> None:
        super().__init__(_("Unknown stage “%(slug)s”.") % {"slug": slug}, field=field)
        self.slug = slug


class NoSuchTransition(DomainError):
    code = "no_such_transition"

    def __init__(self, from_stage: str, to_stage: str) -> None:
        super().__init__(
            _("There is no transition from %(from)s to %(to)s.") % {"from": from_stage, "to": to_stage},
            field="to",
        )
        self.from_stage = from_stage
        self.to_stage = to_stage


class RequiredFieldMissing(DomainError):
    code = "required_field_missing"

    def __init__(self, field_name: str, label: str, message: str | Promise | None = None) -> None:
        super().__init__(
            message or _("%(label)s must be set before this move.") % {"label": label}, field=field_name
        )
        self.label = label


class RequirementClosed(DomainError):
    code = "requirement_closed"

    def __init__(self, key: str = "") -> None:
        super().__init__(_("Requirement %(key)s is closed.") % {"key": key} if key else _("It is closed."))


class NotPermitted(DomainError):
    """The user may see the object but not do this. Maps to 403."""

    code = "not_permitted"


class RoleNotAllowed(NotPermitted):
    code = "role_not_allowed"

    def __init__(self, allowed_roles: Iterable[str]) -> None:
        self.allowed_roles = tuple(sorted(allowed_roles))
        names = ", ".join(self.allowed_roles) or "-"
        super().__init__(_("Only these roles may do this: %(roles)s.") % {"roles": names})


class NotFound(DomainError):
    """Absent, or outside the user's teams: the two are never told apart. Maps to 404."""

    code = "not_found"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or _("Not found."))


class Conflict(DomainError):
    """The requirement moved meanwhile. Maps to 409."""

    code = "conflict"

    def __init__(self, *, expected: str, current: str, moved_by: str = "", key: str = "") -> None:
        self.expected = expected
        self.current = current
        self.moved_by = moved_by
        if moved_by:
            message = _("%(key)s is no longer in %(expected)s: %(who)s moved it to %(current)s.") % {
                "key": key,
                "expected": expected,
                "who": moved_by,
                "current": current,
            }
        else:
            message = _("%(key)s is no longer in %(expected)s: it is in %(current)s now.") % {
                "key": key,
                "expected": expected,
                "current": current,
            }
        super().__init__(message, field="from")
