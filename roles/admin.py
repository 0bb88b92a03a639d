from django.contrib import admin
from django.http import HttpRequest

from .models import AuditEntry, LoginThrottle, Membership, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "key_prefix", "time_zone", "created_at"]
    search_fields = ["name", "key_prefix"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "is_ops", "is_pm", "is_engineer", "is_analyst", "is_lead"]
    list_filter = ["team", "is_lead"]
    search_fields = ["user__username", "team__name"]
    list_select_related = ["user", "team"]


@admin.register(LoginThrottle)
class LoginThrottleAdmin(admin.ModelAdmin):
    """Failed sign-ins per username; deleting a row unlocks the username at once."""

    list_display = ["username", "failures", "last_failure_at", "locked_until"]
    search_fields = ["username"]
    readonly_fields = ["username", "failures", "last_failure_at", "locked_until"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit log is written by the services only: staff read it here, nobody edits it."""

    list_display = ["created_at", "team", "actor", "action", "target"]
    list_filter = ["action", "team"]
    search_fields = ["target", "actor__username"]
    list_select_related = ["team", "actor"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
