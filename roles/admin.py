from django.contrib import admin

from .models import Membership, Team


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
