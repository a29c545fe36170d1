"""The launch action's two pages: what to launch (template, host, how many), then the preflight.

1. The form: a template offered to soldiers, a compute host from the cloud's own list (or the
   scheduler's choice), and how many VMs per soldier.
2. The preflight: every row with its project quota, and what will not fit (quota, free floating
   IPs on the external network, compute room from Placement) before anything is created.
3. Staff launch the rows that fit; the batch page follows them.

A soldier who already has a live VM from the template does not fit unless the operator ticks
"second VM". The preflight page carries a fresh idempotency key: submitting it twice (a double
click, the browser's re-submit, two operators on one page) launches once, and the second submit
shows the first one's batch.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal import services
from portal.admin.helpers import action_context, batch_url, report
from portal.models import Soldier, VmTemplate
from portal.openstack import OpenStackError

MAX_PER_SOLDIER = 5
LAUNCH_KEY = re.compile(r"[0-9a-f]{32}")


class LaunchForm(forms.Form):
    template = forms.ModelChoiceField(
        label=gettext_lazy("Template"),
        queryset=VmTemplate.objects.filter(is_active=True),
        empty_label=None,
    )
    host = forms.ChoiceField(
        label=gettext_lazy("Compute host"),
        required=False,
        help_text=gettext_lazy("From the cloud's list of compute hosts that are up and enabled."),
    )
    count = forms.IntegerField(
        label=gettext_lazy("VMs per soldier"),
        min_value=1,
        max_value=MAX_PER_SOLDIER,
        initial=1,
    )
    second_vm = forms.BooleanField(
        label=gettext_lazy("Second VM"),
        required=False,
        help_text=gettext_lazy(
            "Also launch for soldiers who already have a live VM from this template (each soldier "
            "is promised one). Needed for more than one VM per soldier."
        ),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("count") or 1) > 1 and not data.get("second_vm"):
            self.add_error(
                "second_vm", _('More than one VM per soldier needs the "second VM" box ticked.')
            )
        return data

    def __init__(self, *args: Any, hosts: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["host"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", _("Any host (the scheduler chooses)")), *((h, h) for h in hosts)]


def _hosts(request: HttpRequest, modeladmin: Any) -> list[str]:
    try:
        return sorted({h.host for h in services.compute_hosts()})
    except OpenStackError as exc:
        modeladmin.message_user(
            request,
            _(
                "The cloud's compute hosts could not be listed (%(error)s); the scheduler will "
                "choose."
            )
            % {"error": exc},
            messages.WARNING,
        )
        return []


def launch_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Soldier],
) -> HttpResponse | None:
    """The body of SoldierAdmin's launch action: form, then preflight, then launch."""
    soldiers = list(queryset.select_related("project").order_by("service_number"))
    step = request.POST.get("step", "")
    hosts = _hosts(request, modeladmin)
    form = LaunchForm(request.POST if step else None, hosts=hosts)
    context = {
        **action_context(modeladmin, request, soldiers, action="launch_vm", title=_("Launch VMs")),
        "objects": soldiers,
        "form": form,
    }
    if not step or not form.is_valid():
        return TemplateResponse(request, "admin/portal/launch.html", context)
    template: VmTemplate = form.cleaned_data["template"]
    count: int = form.cleaned_data["count"]
    host: str = form.cleaned_data["host"]
    second_vm: bool = form.cleaned_data["second_vm"]
    key = request.POST.get("launch_key", "")
    if step == "launch" and not LAUNCH_KEY.fullmatch(key):
        # Not from a preflight page: check again, and launch from the page that shows it.
        modeladmin.message_user(
            request, _("Look at the preflight, then launch from its page."), messages.WARNING
        )
    elif step == "launch":
        result = services.batch_launch_many(
            soldiers=soldiers,
            template=template,
            count=count,
            host=host,
            requested_by=request.user,
            second_vm=second_vm,
            launch_key=key,
        )
        if result.replayed:
            assert result.batch is not None
            modeladmin.message_user(
                request,
                _(
                    "This launch form was already submitted; nothing more was launched. "
                    "Here is what it started."
                ),
                messages.WARNING,
            )
            return HttpResponseRedirect(batch_url(result.batch))
        return report(modeladmin, request, result)
    preflight = services.launch_preflight(
        soldiers=soldiers, template=template, count=count, host=host, second_vm=second_vm
    )
    context.update(
        {
            "title": _("Preflight: %(count)s × %(template)s")
            % {"count": count, "template": template.name},
            "preflight": preflight,
            "fitting": [s.pk for s in preflight.fitting],
            "vm_total": len(preflight.fitting) * count,
            "launch_key": uuid.uuid4().hex,
        }
    )
    return TemplateResponse(request, "admin/portal/preflight.html", context)
