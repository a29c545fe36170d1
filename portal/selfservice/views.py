"""The soldier pages: thin views that parse, authorize, call one service and render.

Every page renders from the portal's mirror: no view here calls the cloud except the login, the
password change and the SSH key import, which must (through their services).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.signals import user_login_failed
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from portal import pollcache, services
from portal.metrics import record_poll_answer
from portal.models import Instance, Operation, SshKey
from portal.selfservice import auth, poll
from portal.selfservice.access import (
    get_instance_for_soldier,
    get_instance_of,
    request_soldier,
    soldier_view,
)
from portal.selfservice.cards import ACTIONS, card_for, cards_for
from portal.selfservice.forms import (
    LoginForm,
    PasswordChangeForm,
    SshKeyForm,
    offered_templates,
)
from portal.services.passwords import UNCONFIRMED, cloud_password_rule
from portal.status import d_day
from portal.templatetags.portal_ui import kst

DISCHARGE_BANNER_DAYS = 30
# What services.soldier_password_change stores when Keystone refuses the original password or
# the new one; other failures mean the cloud could not be asked.
_WRONG_ORIGINAL = "The current password is not correct."
_REFUSED_NEW = "The cloud did not accept the new password: %(detail)s"


# --- login ----------------------------------------------------------------------------------


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


def _after_login(request: HttpRequest) -> HttpResponse:
    if getattr(request.user, "soldier", None) is None and request.user.is_staff:
        return redirect("admin:index")
    return redirect(_safe_next(request) or "selfservice:home")


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    """Log in with the cloud account; Keystone down or slow is a 503, not a failed login."""
    if request.user.is_authenticated and request.method == "GET":
        return _after_login(request)
    form = LoginForm(request, data=request.POST if request.method == "POST" else None)
    context: dict[str, Any] = {"form": form, "next": _safe_next(request)}
    if request.method == "POST":
        try:
            valid = form.is_valid()
        except services.CloudLoginUnavailable as exc:
            form = LoginForm(request, initial={"username": request.POST.get("username", "")})
            busy = isinstance(exc, services.CloudLoginBusy)
            context.update(form=form, unavailable=not busy, busy=busy)
            response = render(request, "portal/login.html", context, status=503)
            response["Retry-After"] = "5" if busy else "60"
            return response
        if valid:
            auth_login(request, form.get_user())
            return _after_login(request)
        reason = auth.refusal(request)
        if reason:
            context["refusal"] = gettext(reason)
    return render(request, "portal/login.html", context)


def locked_out(
    request: HttpRequest, response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """django-axes' lockout answer: when the soldier may try again, in their time zone."""
    retry_at: datetime = timezone.now() + settings.AXES_COOLOFF_TIME
    minutes = max(1, round(settings.AXES_COOLOFF_TIME / timedelta(minutes=1)))
    context: dict[str, Any] = {"locked": True, "retry": kst(retry_at), "minutes": minutes}
    match = request.resolver_match
    soldier = getattr(request.user, "soldier", None)
    if match is not None and match.view_name == "selfservice:password" and soldier is not None:
        context.update(form=PasswordChangeForm(), soldier=soldier)
        return render(request, "portal/password.html", context, status=429)
    context.update(form=LoginForm(request), next="")
    return render(request, "portal/login.html", context, status=429)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    auth_logout(request)
    messages.info(request, gettext("You have logged out."))
    return redirect("selfservice:login")


# --- my VMs ---------------------------------------------------------------------------------


def _discharge_banner(soldier: Any) -> dict[str, Any] | None:
    days = soldier.days_until_discharge
    if days is None or not 0 <= days <= DISCHARGE_BANNER_DAYS:
        return None
    return {"days": days, "d_day": d_day(days), "on": soldier.effective_discharge_on}


@soldier_view
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """My VMs: one card per VM, or the templates a soldier may request."""
    soldier = request_soldier(request)
    cards = cards_for(soldier)
    live = services.soldier_live_instances(soldier).count() if cards else 0
    context = {
        "soldier": soldier,
        "cards": cards,
        "templates": offered_templates() if live < services.selfservice.live_vm_limit() else None,
        "ssh_key": SshKey.objects.filter(soldier=soldier).first(),
        "discharge": _discharge_banner(soldier),
    }
    return render(request, "portal/home.html", context)


def vm_card(request: HttpRequest, pk: int) -> HttpResponse:
    """The card's live part, for htmx polling: 204 while nothing changed, the card otherwise
    (asking every 2 s while the VM is under way, every CARD_IDLE_POLL_SECONDS at rest), with the
    stop-polling status (286) once the VM is deleted.

    The session is checked against the cache first (portal/selfservice/poll.py): when the cache
    vouches for it, neither "unchanged" nor a changed card loads the user from the database.
    """
    checked = poll.check(request, pk)
    if checked.unchanged:
        record_poll_answer("selfservice:vm_card", changed=False)
        return poll.unchanged_response()
    if checked.soldier_id is not None:
        # The version is read before the VM is (see portal/pollcache.py).
        version = checked.version or pollcache.vm_version(pk)
        instance = get_instance_of(pk, soldier_id=checked.soldier_id)
        return _card(request, instance, soldier_id=checked.soldier_id, version=version)
    # Read before the user and the VM are: see portal/pollcache.py.
    generation = poll.auth_generation(request)
    return _vm_card(request, pk, generation, checked.version)


@soldier_view
@require_GET
def _vm_card(
    request: HttpRequest, pk: int, generation: str | None, version: str | None
) -> HttpResponse:
    soldier = request_soldier(request)
    poll.remember_auth(request, generation, soldier)
    if pollcache.enabled():
        version = version or pollcache.vm_version(pk)
    instance = get_instance_for_soldier(request, pk)
    return _card(request, instance, soldier_id=soldier.pk, version=version or "")


def _card(
    request: HttpRequest, instance: Instance, *, soldier_id: int, version: str
) -> HttpResponse:
    card = card_for(instance)
    seen = request.GET.get("seen", "")
    context = {
        "card": card,
        "seen": poll.seen_key(seen) if seen else "",
        "seen_value": poll.seen_value(
            card, soldier_id=soldier_id, version=version, now=timezone.now()
        )
        if version
        else "",
    }
    # The card's partial reads nothing of the request: no context processors (a tenth of a poll).
    content = render_to_string("portal/home.html#vm-card", context)
    record_poll_answer("selfservice:vm_card", changed=True)
    return HttpResponse(content) if card.watch else HttpResponseStopPolling(content)


@soldier_view
@require_http_methods(["GET", "POST"])
def vm_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Start, stop, restart or delete my VM: a confirmation page, then the POST that acts."""
    instance = get_instance_for_soldier(request, pk)
    chosen = ACTIONS.get(action)
    if chosen is None:
        raise Http404
    card = card_for(instance)
    if request.method == "GET":
        context = {"card": card, "action": chosen, "offered": chosen in card.actions}
        return TemplateResponse(request, "portal/confirm_action.html", context)
    soldier = request_soldier(request)
    try:
        if chosen.verb == Instance.Action.DELETE:
            services.soldier_vm_delete(
                soldier=soldier, instance=instance, requested_by=request.user
            )
        else:
            services.soldier_vm_power(
                soldier=soldier, instance=instance, action=chosen.verb, requested_by=request.user
            )
    except services.OperationRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            gettext("%(action)s: your request was sent. The card below follows it.")
            % {"action": chosen.label},
        )
    return redirect("selfservice:home")


@soldier_view
@require_http_methods(["GET", "POST"])
def vm_request(request: HttpRequest, template_pk: int) -> HttpResponse:
    """Ask for a VM from one offered template: a confirmation page, then the POST that queues it."""
    template = get_object_or_404(offered_templates(), pk=template_pk)
    soldier = request_soldier(request)
    if request.method == "GET":
        context = {
            "template": template,
            "ssh_key": SshKey.objects.filter(soldier=soldier).first(),
            "limit": services.selfservice.live_vm_limit(),
        }
        return TemplateResponse(request, "portal/confirm_request.html", context)
    try:
        services.soldier_vm_request(soldier=soldier, template=template, requested_by=request.user)
    except services.OperationRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            gettext("Your VM is on its way. It usually takes a few minutes; this page follows it."),
        )
    return redirect("selfservice:home")


# --- how do I get in: the SSH key -----------------------------------------------------------


@sensitive_post_parameters("public_key")
@soldier_view
@require_http_methods(["GET", "POST"])
def ssh_key(request: HttpRequest) -> HttpResponse:
    """Register or replace the soldier's SSH public key (imported into the cloud at once)."""
    soldier = request_soldier(request)
    current = SshKey.objects.filter(soldier=soldier).first()
    form = SshKeyForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            try:
                op = services.soldier_ssh_key_set(
                    soldier=soldier, key=form.cleaned_data["public_key"], requested_by=request.user
                )
            except services.OperationRefused as exc:
                messages.error(request, str(exc))
            else:
                if op.state == Operation.State.SUCCEEDED:
                    messages.success(request, op.message_text)
                    return redirect("selfservice:ssh_key")
                messages.error(request, op.message_text)
        elif form.private_key_pasted:
            form = form.without_the_private_key()
    context = {"form": form, "current": current, "soldier": soldier}
    return render(request, "portal/ssh_key.html", context)


# --- password -------------------------------------------------------------------------------

# Keystone's password-policy messages (keystone/exception.py), in the soldier's language.
_KEYSTONE_PASSWORD_MESSAGES = (
    (
        re.compile(r"The password does not (?:match|meet) the requirements: (?P<detail>.*?)\.?$"),
        lambda m: (
            gettext("The cloud's password rules were not met: %(rule)s")
            % {"rule": m.group("detail")}
        ),
    ),
    (
        re.compile(r"The new password cannot be identical to a previous password.*?(?P<n>\d+)"),
        lambda m: (
            gettext("The new password must differ from your last %(count)s passwords.")
            % {"count": m.group("n")}
        ),
    ),
    (
        re.compile(r"minimum password age.*?(?P<days>\d+) day\(s\) before.*?(?P<left>\d+) day"),
        lambda m: (
            gettext(
                "You changed your password recently; it can be changed again in %(days)s day(s). "
                "Staff can reset it if you must change it now."
            )
            % {"days": m.group("left")}
        ),
    ),
)


def keystone_password_message(detail: str) -> str:
    """Keystone's refusal of a new password, translated where the portal knows the message."""
    for pattern, words in _KEYSTONE_PASSWORD_MESSAGES:
        found = pattern.search(detail)
        if found:
            return str(words(found))
    return gettext("The cloud did not accept the new password: %(detail)s") % {"detail": detail}


@sensitive_post_parameters("original_password", "new_password", "confirm_password")
@soldier_view
@never_cache
@require_http_methods(["GET", "POST"])
def password(request: HttpRequest) -> HttpResponse:
    """Change the cloud password (Keystone's self-service change); throttled like the login."""
    soldier = request_soldier(request)
    form = PasswordChangeForm(
        request.POST if request.method == "POST" else None,
        username=soldier.keystone_user_name,
        cloud_rule=cloud_password_rule(ask_cloud=request.method == "POST"),
    )
    credentials = {"username": soldier.keystone_user_name}
    if request.method == "POST":
        if AxesProxyHandler.is_locked(request, credentials):
            return locked_out(request, None, credentials)
        if form.is_valid():
            try:
                op = services.soldier_password_change(
                    soldier=soldier,
                    original_password=form.cleaned_data["original_password"],
                    new_password=form.cleaned_data["new_password"],
                    requested_by=request.user,
                )
            except services.OperationRefused as exc:
                # A session that outlived the cloud account (discharged, not yet onboarded).
                form.add_error(None, str(exc))
                return render(request, "portal/password.html", {"form": form, "soldier": soldier})
            if op.state == Operation.State.SUCCEEDED:
                # The change ended every session of the soldier; this one goes on.
                user = soldier.user
                user.refresh_from_db(fields=["password"])
                update_session_auth_hash(request, user)
                messages.success(
                    request,
                    gettext(
                        "Your cloud password was changed. Use the new one from now on, here "
                        "and in the cloud."
                    ),
                )
                return redirect("selfservice:home")
            if op.message == _WRONG_ORIGINAL:
                # Counts like a failed login: axes locks the username out at its limit (its
                # middleware then answers with the lockout page).
                user_login_failed.send(sender=__name__, credentials=credentials, request=request)
                form.add_error("original_password", gettext("The current password is not correct."))
            elif op.message == _REFUSED_NEW:
                detail = str(op.message_params.get("detail", ""))
                form.add_error("new_password", keystone_password_message(detail))
            elif op.message == UNCONFIRMED:
                form.add_error(
                    None,
                    gettext(
                        "The cloud did not confirm whether your password was changed. Log out "
                        "and log in with the new password; if it is refused, the old one still "
                        "works."
                    ),
                )
            else:
                form.add_error(
                    None,
                    gettext(
                        "The cloud could not be reached, so your password was not changed. "
                        "Try again in a few minutes."
                    ),
                )
    return render(request, "portal/password.html", {"form": form, "soldier": soldier})
