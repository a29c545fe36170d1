"""The console's cheap replacements for Django helpers say exactly what the helpers say."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Choices
from django.urls import reverse
from django.utils import html as django_html
from django.utils import translation
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy

from portal.admin import markup
from portal.admin.helpers import change_url, choice_label
from portal.models import Instance, Operation, Soldier


class Marked:
    def __html__(self) -> str:
        return "<i>marked</i>"

    def __str__(self) -> str:
        return "<i>not this</i>"


VALUES: list[Any] = [
    "plain",
    "<script>alert('x')</script> & \"quoted\"",
    mark_safe("<b>safe</b>"),
    SafeString("<br>"),
    gettext_lazy("Unknown"),
    5,
    -1.5,
    None,
    "",
    "한국어 <태그>",
    Marked(),
]


@pytest.mark.parametrize("value", VALUES)
def test_format_html_escapes_like_djangos(value: Any) -> None:
    for language in ("en", "ko"):
        with translation.override(language):
            ours = markup.format_html('<span title="{}">{}</span>', value, value)
            djangos = django_html.format_html('<span title="{}">{}</span>', value, value)
            assert ours == djangos
            assert isinstance(ours, SafeString)
            assert markup.conditional_escape(value) == django_html.conditional_escape(value)


def test_format_html_wants_arguments_like_djangos() -> None:
    with pytest.raises(TypeError):
        markup.format_html("<p>nothing to put in</p>")


CHOICES: list[tuple[type[Choices], str, Any]] = [
    (Operation.Kind, "kind", Operation),
    (Operation.State, "state", Operation),
    (Instance.Action, "pending_action", Instance),
    (Soldier.State, "state", Soldier),
]


@pytest.mark.parametrize(("choices", "field", "model"), CHOICES)
def test_choice_label_is_get_display(choices: type[Choices], field: str, model: Any) -> None:
    values = [*choices.values, "not-a-choice", ""]
    for language in ("en", "ko"):
        with translation.override(language):
            for value in values:
                display = getattr(model(**{field: value}), f"get_{field}_display")()
                assert choice_label(choices, value) == display, (value, language)


def test_change_url_is_reverse() -> None:
    for pk in (1, 42, 1234567):
        instance = Instance(pk=pk)
        assert change_url(instance) == reverse("admin:portal_instance_change", args=[pk])
        operation = Operation(pk=pk)
        assert change_url(operation) == reverse("admin:portal_operation_change", args=[pk])
