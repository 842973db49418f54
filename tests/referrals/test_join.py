from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.common.errors import FissionError
from apps.referrals.models import Participant
from apps.referrals.services import participant_join, resolve_referrer
from tests.factories import CampaignFactory

pytestmark = pytest.mark.django_db


def test_joining_twice_with_the_same_mailbox_returns_the_first_row(campaign, alice):
    again, created = participant_join(
        campaign=campaign, email="ALICE+promo@Example.com", consent=True
    )
    assert not created and again.pk == alice.pk


def test_a_referrer_is_set_once(campaign, alice, bob, carol):
    again, created = participant_join(
        campaign=campaign, email="carol@example.com", referrer=alice, consent=True
    )
    assert not created and again.referrer_id == bob.pk


def test_self_referral_by_the_same_mailbox_is_refused(campaign, alice):
    with pytest.raises(FissionError, match="own referrer") as exc:
        participant_join(
            campaign=campaign, email="Alice+2@example.com", referrer=alice, consent=True
        )
    assert exc.value.code == "self_referral"


def test_a_code_of_another_campaign_is_refused(campaign, alice):
    other = CampaignFactory()
    with pytest.raises(FissionError, match="another campaign"):
        resolve_referrer(other, alice.code)
    with pytest.raises(FissionError, match="No participant"):
        resolve_referrer(campaign, "nosuchcode")


@pytest.mark.parametrize("status", ["draft", "paused", "ended"])
def test_closed_campaigns_take_no_joins(status):
    campaign = CampaignFactory(status=status)
    with pytest.raises(FissionError, match="does not take new participants"):
        participant_join(campaign=campaign, email="x@example.com", consent=True)
    assert not Participant.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_joins_of_one_person_make_one_row():
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent connections")
    campaign = CampaignFactory()
    barrier = threading.Barrier(8)
    results: list[tuple[int, bool]] = []

    def worker() -> None:
        try:
            barrier.wait()
            p, created = participant_join(campaign=campaign, email="zoe@example.com", consent=True)
            results.append((p.pk, created))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert len({pk for pk, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Participant.objects.filter(campaign=campaign).count() == 1


def test_withdrawing_consent_keeps_the_first_time_and_the_participant(alice):
    from apps.referrals.services import participant_withdraw_consent

    assert participant_withdraw_consent(participant=alice) is True
    first = Participant.objects.get(pk=alice.pk).consent_withdrawn_at
    assert first is not None
    assert participant_withdraw_consent(participant=alice) is False
    again = Participant.objects.get(pk=alice.pk)
    assert again.consent_withdrawn_at == first and again.status == "active"
