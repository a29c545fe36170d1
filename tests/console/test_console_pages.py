"""Every console page renders for both roles, in Korean by default and in English."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

LISTS = [
    "soldier",
    "project",
    "projectnetwork",
    "vmtemplate",
    "instance",
    "floatingip",
    "operation",
    "batch",
    "drift",
]


@pytest.mark.parametrize("model", LISTS)
def test_every_list_renders_for_a_viewer_and_an_operator(
    model: str, viewer: Client, operator: Client
) -> None:
    url = reverse(f"admin:portal_{model}_changelist")
    assert viewer.get(url).status_code == 200
    assert operator.get(url).status_code == 200


def test_the_index_shows_the_dashboard_and_links_the_status_page(operator: Client) -> None:
    page = operator.get(reverse("admin:index"))
    assert page.status_code == 200
    html = page.content.decode()
    assert reverse("admin:portal_status") in html
    assert 'class="cs-dashboard"' in html
    assert reverse("admin:portal_status") in html
    status = operator.get(reverse("admin:portal_status"))
    assert status.status_code == 200


def test_the_staff_login_page_has_a_heading_and_the_language_switch(client: Client) -> None:
    page = client.get(reverse("admin:login")).content.decode()
    assert "<h1>Staff console login</h1>" in page or "<h1>운영 콘솔 로그인</h1>" in page
    assert 'name="language"' in page
