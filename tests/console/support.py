"""Helpers of the console tests: post an admin action the way the page does, set up VMs."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from django.test import Client
from django.urls import reverse

from portal import services
from portal.models import Instance, Soldier, VmTemplate
from tests.integration.conftest import make_soldier


def changelist(model: str) -> str:
    return reverse(f"admin:portal_{model}_changelist")


def act(
    client: Client, model: str, action: str, ids: list[Any], *, follow: bool = False, **fields: Any
) -> Any:
    """The first POST of an action, as the change list's "Go" button sends it."""
    data = {"action": action, "index": "0", "_selected_action": [str(i) for i in ids], **fields}
    return client.post(changelist(model), data, follow=follow)


def confirm(
    client: Client, model: str, action: str, ids: list[Any], *, follow: bool = False, **fields: Any
) -> Any:
    """The second POST, from an intermediate page (no "index", ``post=yes``)."""
    data = {"action": action, "post": "yes", "_selected_action": [str(i) for i in ids], **fields}
    return client.post(changelist(model), data, follow=follow)


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def onboarded(tasks: Any, **fields: Any) -> Soldier:
    soldier = make_soldier(**fields)
    services.soldier_onboard(soldier=soldier)
    tasks()
    soldier.refresh_from_db()
    assert soldier.state == Soldier.State.ACTIVE
    return soldier


def running_vm(soldier: Soldier, template: VmTemplate, tasks: Any) -> Instance:
    instance = services.instance_launch(soldier=soldier, template=template)
    tasks()
    instance.refresh_from_db()
    assert instance.status == "ACTIVE", instance.last_error
    return instance


class _Inputs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        name = found.get("name")
        if tag == "input" and name and found.get("type") not in ("checkbox", "submit"):
            self.values[name] = found.get("value") or ""


def form_fields(html: str) -> dict[str, str]:
    """The named inputs of a page (what a browser posts back, management forms included)."""
    parser = _Inputs()
    parser.feed(html)
    return parser.values
