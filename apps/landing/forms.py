from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.referrals.models import Participant

NAME_MAX = Participant._meta.get_field("name").max_length or 100


class JoinForm(forms.Form):
    """The join form: what the person types. The rules (duplicates, self-referral, a
    closed campaign) are the join service's; this only checks the shape of the input."""

    email = forms.EmailField(
        label=_("Email"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "inputmode": "email"}),
        error_messages={
            "required": _("Please enter your email address."),
            "invalid": _("Please enter a valid email address."),
        },
    )
    name = forms.CharField(
        label=_("Your name"),
        max_length=NAME_MAX,
        required=False,
        help_text=_("Friends you invite see your first name."),
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    consent = forms.BooleanField(
        label=_(
            "I agree to join this campaign and that my email address and name are used to "
            "run it and to tell me about my rewards."
        ),
        error_messages={"required": _("Please tick the box to agree before joining.")},
    )
    # The invite code named in the landing page's address (?ref=), carried to the join.
    ref = forms.CharField(required=False, max_length=32, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label_suffix = ""

    def link_errors(self) -> None:
        """Point each invalid input at its error message, for screen readers."""
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs["aria-describedby"] = f"{name}-error"
