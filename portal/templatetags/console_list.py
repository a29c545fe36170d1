"""``{% console_result_list cl %}``: the admin's ``{% result_list cl %}`` with faster rows."""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.admin.templatetags.base import InclusionAdminNode

from portal.admin.result_rows import result_list

register = template.Library()


@register.tag(name="console_result_list")
def console_result_list_tag(parser: Any, token: Any) -> InclusionAdminNode:
    # The same template as the admin's tag (overridable per app and model in the same way).
    return InclusionAdminNode(
        "console_result_list",
        parser,
        token,
        func=result_list,
        template_name="change_list_results.html",
        takes_context=False,
    )
