"""The soldier pages' forms. Passwords and keys are checked here, never kept."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal import password_policy
from portal.models import VmTemplate
from portal.openstack.types import PasswordRule
from portal.sshkeys import PrivateKeyPasted, PublicKey, PublicKeyError, parse_public_key


def bound_the_username(form: AuthenticationForm) -> None:
    """Refuse a username longer than the user model's before anyone authenticates it.

    Django's AuthenticationForm sets the field's max_length after the field is built, so it only
    reaches the widget: a 10 kB username went on to django-axes, whose failed-login record
    (255 characters) PostgreSQL refused with a 500.
    """
    field = form.fields["username"]
    assert isinstance(field, forms.CharField)
    assert field.max_length is not None
    field.validators.append(MaxLengthValidator(field.max_length))


class LoginForm(AuthenticationForm):
    """Username and password of the cloud account (staff: their portal account)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _(
            "The username or password is not correct. Use your cloud account (the one you "
            "were given for OpenStack)."
        ),
        "inactive": _("This account is disabled."),
    }

    def __init__(self, request: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        bound_the_username(self)
        self.fields["username"].label = _("Cloud username")
        self.fields["username"].widget.attrs.update(
            {"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}
        )
        self.fields["password"].label = _("Password")


class PasswordChangeForm(forms.Form):
    original_password = forms.CharField(
        label=_("Current password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    new_password = forms.CharField(
        label=_("New password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    confirm_password = forms.CharField(
        label=_("New password, again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(
        self,
        *args: Any,
        username: str = "",
        cloud_rule: PasswordRule | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.username = username
        self.cloud_rule = cloud_rule or PasswordRule(None, None)
        field = self.fields["new_password"]
        # The rules are on the page before anything is sent, not only in the refusal: the
        # portal's own, then the cloud's (Keystone's [security_compliance] rule) in its words.
        rules = [str(rule) for rule in password_policy.rules()]
        if self.cloud_rule.regex:
            rules.append(
                gettext("The cloud's own rule: %(rule)s")
                % {"rule": self.cloud_rule.description or self.cloud_rule.regex}
            )
        field.help_text = format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((rule,) for rule in rules))
        )
        field.widget.attrs["minlength"] = str(password_policy.minimum_length())

    def clean_new_password(self) -> str:
        new = str(self.cleaned_data.get("new_password") or "")
        found = password_policy.problems(new, username=self.username)
        regex = self.cloud_rule.regex
        if new and regex and re.match(regex, new) is None:
            # Keystone matches the same way (re.match); it would refuse this one too.
            found.append(
                gettext("The cloud's password rules were not met: %(rule)s")
                % {"rule": self.cloud_rule.description or regex}
            )
        if found:
            raise forms.ValidationError(found)
        return new

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        new, confirm = data.get("new_password"), data.get("confirm_password")
        if new and confirm and new != confirm:
            self.add_error("confirm_password", _("The two new passwords are not the same."))
        if new and new == data.get("original_password"):
            self.add_error("new_password", _("The new password must differ from the current one."))
        return data


class SshKeyForm(forms.Form):
    public_key = forms.CharField(
        label=_("Your SSH public key"),
        max_length=16_384,
        widget=forms.Textarea(
            attrs={
                "rows": 4,
                "spellcheck": "false",
                "autocapitalize": "none",
                "autocomplete": "off",
                "placeholder": "ssh-ed25519 AAAA… you@laptop",
            }
        ),
    )
    private_key_pasted = False

    def clean_public_key(self) -> PublicKey:
        try:
            return parse_public_key(self.cleaned_data["public_key"])
        except PrivateKeyPasted as exc:
            # Never echoed back into the page, kept, or logged.
            self.private_key_pasted = True
            raise forms.ValidationError(exc.message, code="private_key") from None
        except PublicKeyError as exc:
            raise forms.ValidationError(exc.message, code="invalid") from None

    def without_the_private_key(self) -> SshKeyForm:
        """A copy of this form to show again: the error, not the pasted text."""
        clean = SshKeyForm(data={"public_key": ""})
        clean.is_valid()
        clean.errors.clear()
        clean.add_error("public_key", _("Paste the public key (the .pub file) instead."))
        clean.private_key_pasted = True
        return clean


def offered_templates() -> Any:
    return VmTemplate.objects.filter(is_active=True).order_by("name")
