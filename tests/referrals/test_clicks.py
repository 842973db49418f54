from __future__ import annotations

import pytest

from apps.referrals.models import Click
from apps.referrals.services import click_record

pytestmark = pytest.mark.django_db


def test_recording_a_click_is_a_single_insert(alice, django_assert_num_queries):
    with django_assert_num_queries(1):
        click_record(
            campaign_id=alice.campaign_id,
            participant_id=alice.pk,
            channel="wechat",
            visitor_id="v1",
            ip_hash="h",
            ua_class="mobile",
        )
    click = Click.objects.get()
    assert click.buffer_id is None
    assert (click.channel, click.visitor_id, click.ua_class, click.is_bot) == (
        "wechat",
        "v1",
        "mobile",
        False,
    )


def test_overlong_values_are_cut_and_unknown_classes_become_other(alice):
    click_record(
        campaign_id=alice.campaign_id,
        participant_id=alice.pk,
        channel="c" * 100,
        visitor_id="v" * 100,
        ua_class="toaster",
        is_bot=True,
    )
    click = Click.objects.get()
    assert len(click.channel) == 32 and len(click.visitor_id) == 64
    assert click.ua_class == "other" and click.is_bot
