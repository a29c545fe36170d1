"""Every portal model is registered in the admin; its list renders, and only people's records
(soldiers, templates) can be added by hand: mirror rows are written by the engine alone."""

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client

from portal import models

pytestmark = pytest.mark.django_db

REGISTERED = [
    models.Soldier,
    models.Project,
    models.ProjectNetwork,
    models.VmTemplate,
    models.Instance,
    models.FloatingIP,
    models.Operation,
    models.Batch,
    models.Drift,
]


def test_every_portal_model_is_in_the_admin() -> None:
    for model in REGISTERED:
        assert admin.site.is_registered(model), model


@pytest.fixture(autouse=True)
def _plain_static_files(settings: Any) -> None:
    # Tests run with DEBUG off but without collectstatic's manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


ADDABLE = {models.Soldier, models.VmTemplate}


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m.__name__)
def test_the_admin_lists_each_model(admin_client: Client, model: Any) -> None:
    url = f"/admin/portal/{model._meta.model_name}/"
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(f"{url}add/").status_code == (200 if model in ADDABLE else 403)
