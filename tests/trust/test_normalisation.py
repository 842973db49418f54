"""Email normalisation: the issue's vectors, and what joining does with them."""

from __future__ import annotations

import pytest

from apps.common.emails import normalize_email
from apps.referrals.models import Participant
from tests.factories import join

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("typed", "mailbox"),
    [
        ("A.B.c+x@Gmail.com", "abc@gmail.com"),
        ("abc@googlemail.com", "abc@gmail.com"),
        ("a.b.c@GoogleMail.com", "abc@gmail.com"),
        ("user+tag@outlook.com", "user@outlook.com"),
        ("User.Name+news@Outlook.com", "user.name@outlook.com"),  # dots matter outside Google
        ("  Bob@Example.COM  ", "bob@example.com"),
        ("x@Bücher.DE", "x@xn--bcher-kva.de"),
        ("x@xn--bcher-kva.de", "x@xn--bcher-kva.de"),
        ("li@例え.jp", "li@xn--r8jz45g.jp"),
        ("li@例え。jp", "li@xn--r8jz45g.jp"),  # the ideographic full stop of CJK keyboards
        ("u@ＥＸＡＭＰＬＥ.com", "u@example.com"),  # full-width letters
        ("a@faß.de", "a@xn--fa-hia.de"),  # IDNA 2008: not fass.de, another domain
        ("A@GMAIL.COM.", "a@gmail.com"),  # the root dot
    ],
)
def test_addresses_that_reach_one_mailbox_normalise_alike(typed, mailbox):
    assert normalize_email(typed) == mailbox


@pytest.mark.parametrize(
    "typed", ["", "no-at-sign", "@example.com", "a@", "+tag@gmail.com", "a@x..com", "a b@x.com"]
)
def test_what_is_not_an_address_is_refused(typed):
    with pytest.raises(ValueError, match=r"."):
        normalize_email(typed)


def test_one_mailbox_joins_once_and_keeps_what_was_typed(campaign):
    first = join(campaign, "ab", email="A.B.c+x@Gmail.com")
    again = join(campaign, "ab", email="abc@googlemail.com")
    assert again.pk == first.pk
    assert Participant.objects.filter(campaign=campaign).count() == 1
    first.refresh_from_db()
    assert (first.email, first.email_normalized) == ("A.B.c+x@Gmail.com", "abc@gmail.com")


def test_naming_ones_own_code_under_another_spelling_is_refused_by_the_api(api, campaign):
    alice = join(campaign, "alice", email="alice.w@gmail.com")
    response = api.post(
        "/api/v1/campaigns/spring/participants/",
        {"email": "Alice.W+promo@googlemail.com", "referral_code": alice.code, "consent": True},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "self_referral"
