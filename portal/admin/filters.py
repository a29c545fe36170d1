"""List filters of the console: merged status, discharge soon, drift, failed operations."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from portal import services
from portal.models import Drift, Instance, Operation, Soldier
from portal.status import STATUS_KEYS


class MergedStatusFilter(admin.SimpleListFilter):
    """The decoder's status, worked out from the mirror's fields (no cloud call)."""

    title = _("status")
    parameter_name = "merged_status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(STATUS_KEYS)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        value = self.value()
        if not value:
            return None
        return services.instances_with_status(queryset, value)


class DischargeWithinFilter(admin.SimpleListFilter):
    title = _("discharge")
    parameter_name = "discharge_within"
    soldier_field = "pk"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("7", _("within 7 days")), ("30", _("within 30 days"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        value = self.value()
        if value not in ("7", "30"):
            return None
        soon = Soldier.objects.discharge_within(days=int(value)).values("pk")
        return queryset.filter(**{f"{self.soldier_field}__in": soon})


class InstanceDischargeFilter(DischargeWithinFilter):
    soldier_field = "owner"


def _open_drift_of(server_field: str) -> Exists:
    return Exists(
        Drift.objects.filter(
            resource_id=OuterRef(server_field), resolved_at__isnull=True, ignored_at__isnull=True
        )
    )


class HasDriftFilter(admin.SimpleListFilter):
    title = _("drift")
    parameter_name = "has_drift"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("has open drift")), ("no", _("no drift"))]

    def _condition(self, queryset: QuerySet[Any]) -> Q:
        if queryset.model is Instance:
            return Q(_open_drift_of("server_id")) | Q(deleted_outside_portal=True)
        drifting = Instance.objects.filter(_open_drift_of("server_id")).values("owner")
        return Q(pk__in=drifting)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() == "yes":
            return queryset.filter(self._condition(queryset))
        if self.value() == "no":
            return queryset.exclude(self._condition(queryset))
        return None


class FailedOperationsFilter(admin.SimpleListFilter):
    title = _("failed operations")
    parameter_name = "failed_ops"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("has a failed operation"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        if self.value() != "yes":
            return None
        field = "instance" if queryset.model is Instance else "soldier"
        failed = Operation.objects.filter(**{field: OuterRef("pk")}, state=Operation.State.FAILED)
        return queryset.filter(Exists(failed))


class DriftStateFilter(admin.SimpleListFilter):
    """Open drift first: the page is a to-do list; ignored and resolved rows are one click away."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("open", _("open")),
            ("ignored", _("ignored")),
            ("resolved", _("resolved")),
            ("all", _("all")),
        ]

    def value(self) -> str:
        return super().value() or "open"

    def choices(self, changelist: Any) -> Any:
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        value = self.value()
        if value == "open":
            return queryset.filter(resolved_at__isnull=True, ignored_at__isnull=True)
        if value == "ignored":
            return queryset.filter(resolved_at__isnull=True, ignored_at__isnull=False)
        if value == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset
