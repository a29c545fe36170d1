"""VM templates: what soldiers may ask for; operators add and edit them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal import services
from portal.admin.helpers import ConsoleAdmin, require_operator
from portal.models import VmTemplate
from portal.openstack import OpenStackError
from portal.openstack.types import ServerStatus


class FromCloudForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Template name"), max_length=100)
    image = forms.ChoiceField(label=gettext_lazy("Image"))
    flavor = forms.ChoiceField(label=gettext_lazy("Flavor"))

    def __init__(self, *args: Any, images: list[Any], flavors: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        image, flavor = self.fields["image"], self.fields["flavor"]
        assert isinstance(image, forms.ChoiceField)
        assert isinstance(flavor, forms.ChoiceField)
        image.choices = [(i.name, i.name) for i in images]
        flavor.choices = [
            (f.name, f"{f.name}: {f.vcpus} vCPU, {f.ram_mib} MiB, {f.disk_gib} GiB")
            for f in flavors
        ]


@admin.register(VmTemplate)
class VmTemplateAdmin(ConsoleAdmin):
    list_display = [
        "name",
        "image_name",
        "flavor_name",
        "network_id",
        "security_group",
        "availability_zone",
        "is_active",
        "vms",
    ]
    list_filter = ["is_active", "flavor_name", "image_name"]
    search_fields = ["name", "image_name", "flavor_name", "image_id", "flavor_id"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A template only names what to boot; VMs made from it keep their own record.
        return request.user.has_perm("portal.delete_vmtemplate")

    def get_queryset(self, request: HttpRequest) -> QuerySet[VmTemplate]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                live_vms=Count("instances", filter=~Q(instances__status=ServerStatus.DELETED))
            )
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "from-cloud/",
                self.admin_site.admin_view(self.from_cloud_view),
                name="portal_vmtemplate_from_cloud",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra = {"from_cloud_url": reverse("admin:portal_vmtemplate_from_cloud")}
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def from_cloud_view(self, request: HttpRequest) -> HttpResponse:
        """Pick an image and a flavor from the cloud's own lists, instead of typing their ids."""
        require_operator(request)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": _("New template from the cloud's images and flavors"),
            "opts": self.model._meta,
            "changelist_url": reverse("admin:portal_vmtemplate_changelist"),
        }
        try:
            images, flavors = services.cloud_boot_choices()
        except OpenStackError as exc:
            self.message_user(
                request, _("The cloud did not answer (%(error)s).") % {"error": exc}, messages.ERROR
            )
            return HttpResponseRedirect(context["changelist_url"])
        form = FromCloudForm(
            request.POST if request.method == "POST" else None, images=images, flavors=flavors
        )
        if request.method == "POST" and form.is_valid():
            try:
                template = services.vm_template_from_cloud(
                    name=form.cleaned_data["name"],
                    image_name=form.cleaned_data["image"],
                    flavor_name=form.cleaned_data["flavor"],
                )
            except services.OperationRefused as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, _("Template %(name)s saved.") % {"name": template.name})
                return HttpResponseRedirect(
                    reverse("admin:portal_vmtemplate_change", args=[template.pk])
                )
        context["form"] = form
        return TemplateResponse(request, "admin/portal/template_from_cloud.html", context)

    @admin.display(description=gettext_lazy("VMs"), ordering="live_vms")
    def vms(self, template: VmTemplate) -> int:
        return int(getattr(template, "live_vms", 0))
