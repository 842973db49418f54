"""K-drop alerts: one per drop (not one a day), saying which of i or c fell."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from celery.exceptions import Retry
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import IntegrityError, transaction

from apps.analytics import tasks
from apps.analytics.alerts import alert_recipients, alert_text
from apps.analytics.models import KAlert
from apps.analytics.ranges import day_start
from apps.analytics.selectors import campaigns_to_check
from apps.analytics.services import k_alert_check, k_alert_email_send
from apps.campaigns.models import Campaign
from tests.factories import CampaignFactory

from .builders import bulk_clicks, bulk_people

pytestmark = pytest.mark.django_db

DAY = date(2025, 6, 15)  # checks run on the morning after DAY, for the 7 days ending it


def week_of(campaign, end: date, *, joined: int, referred: int, visitors: int, tag: str = ""):
    """A week ending `end`: `joined` people (of whom `referred` were invited) and
    `visitors` distinct visitors, all mid-week."""
    when = day_start(end - timedelta(days=3)) + timedelta(hours=12)
    tag = tag or end.isoformat()
    seeds = bulk_people(campaign, joined - referred, when=when, prefix=f"s{tag}-")
    inviter = seeds[0] if seeds else bulk_people(campaign, 1, when=when - timedelta(days=30))[0]
    bulk_people(campaign, referred, referrer=inviter, when=when, prefix=f"r{tag}-")
    if visitors:
        from apps.referrals.models import Click

        Click.objects.bulk_create(
            Click(
                campaign_id=campaign.pk,
                participant=inviter,
                visitor_id=f"v{tag}-{n}",
                created_at=when,
            )
            for n in range(visitors)
        )


@pytest.fixture
def check(django_capture_on_commit_callbacks):
    """Run the check and, as after a real commit, the email task it queues."""

    def run(campaign, day=DAY):
        with django_capture_on_commit_callbacks(execute=True):
            return k_alert_check(campaign_id=campaign.pk, day=day)

    return run


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def spring(operator):
    return CampaignFactory(name="Spring invite", k_alert_threshold=Decimal("0.4"))


def test_an_alert_fires_once_per_drop_and_clears_when_k_recovers(spring, settings, operator, check):
    settings.FISSION = {**settings.FISSION, "K_ALERT_EMAILS": ["growth@example.com"]}
    week_of(spring, DAY - timedelta(7), joined=10, referred=5, visitors=20)  # K 0.5
    week_of(spring, DAY, joined=10, referred=2, visitors=20)  # K 0.2: below 0.4
    alert = check(spring)
    assert alert is not None and alert.reason == "threshold" and alert.k == 0.2
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["growth@example.com", "olivia@example.com"]
    assert mail.outbox[0].subject == "K-factor alert: Spring invite"
    assert f"/admin/campaigns/campaign/{spring.pk}/dashboard/" in mail.outbox[0].body
    # Still low the next days, and the same day checked again: the same episode, no mail.
    assert check(spring) == alert
    week_of(spring, DAY + timedelta(1), joined=5, referred=1, visitors=10, tag="next")
    assert check(spring, DAY + timedelta(1)) == alert
    assert KAlert.objects.count() == 1 and len(mail.outbox) == 1
    assert KAlert.objects.get().last_checked_on == DAY + timedelta(1)
    # A good week: resolved, and no mail for that.
    week_of(spring, DAY + timedelta(8), joined=10, referred=6, visitors=20)
    assert check(spring, DAY + timedelta(8)) is None
    resolved = KAlert.objects.get()
    assert resolved.resolved_at is not None and resolved.resolved_k == 0.6
    # A new drop is a new episode, and a new mail.
    week_of(spring, DAY + timedelta(15), joined=10, referred=1, visitors=20)
    second = check(spring, DAY + timedelta(15))
    assert second is not None and second.pk != alert.pk
    assert KAlert.objects.count() == 2 and len(mail.outbox) == 2


def test_a_week_over_week_drop_beyond_the_fraction(operator, check):
    campaign = CampaignFactory(k_alert_drop_fraction=Decimal("0.3"))
    week_of(campaign, DAY - timedelta(7), joined=10, referred=8, visitors=20)  # K 0.8
    week_of(campaign, DAY, joined=10, referred=6, visitors=20)  # K 0.6: −25 %, allowed
    assert check(campaign) is None
    week_of(campaign, DAY + timedelta(7), joined=10, referred=4, visitors=20)  # 0.4: −33 %
    alert = check(campaign, DAY + timedelta(7))
    assert alert is not None and alert.reason == "drop"
    assert (alert.previous_k, alert.k) == (0.6, 0.4)
    # Flat at the new low is no recovery: the episode stays open until K is back within
    # the fraction of where it was before the drop.
    week_of(campaign, DAY + timedelta(14), joined=10, referred=4, visitors=20)
    assert check(campaign, DAY + timedelta(14)) == alert
    week_of(campaign, DAY + timedelta(21), joined=10, referred=5, visitors=20)  # 0.5 ≥ 0.42
    assert check(campaign, DAY + timedelta(21)) is None
    assert len(mail.outbox) == 1


def test_it_says_conversion_fell_and_suggests_a_richer_reward(spring, check):
    week_of(spring, DAY - timedelta(7), joined=10, referred=5, visitors=20)  # i 2, c 0.25
    week_of(spring, DAY, joined=10, referred=2, visitors=20)  # i 2, c 0.1
    alert = check(spring)
    assert alert.factor == "c"
    text = alert_text(alert)
    assert "richer reward" in text.suggestion
    assert "conversion c: 25.0 % → 10.0 %" in text.detail
    assert "richer reward" in mail.outbox[0].body


def test_it_says_invites_fell_and_suggests_an_easier_share_path(spring, check):
    week_of(spring, DAY - timedelta(7), joined=10, referred=5, visitors=20)  # i 2, c 0.25
    week_of(spring, DAY, joined=10, referred=2, visitors=8)  # i 0.8, c 0.25
    alert = check(spring)
    assert alert.factor == "i"
    text = alert_text(alert)
    assert "easier share path" in text.suggestion and "new channel" not in text.detail
    assert "Invite rate i: 2.00 → 0.80" in text.detail


def test_without_a_week_before_it_cannot_say_which_fell(spring, check):
    week_of(spring, DAY, joined=10, referred=1, visitors=20)
    alert = check(spring)
    assert alert.factor == "" and alert.previous_k is None
    assert "no earlier week" in alert_text(alert).suggestion


def test_no_alert_without_settings_or_without_joins(operator, check):
    quiet = CampaignFactory()
    week_of(quiet, DAY, joined=10, referred=0, visitors=0)
    assert check(quiet) is None
    empty = CampaignFactory(k_alert_threshold=Decimal("0.5"))
    assert check(empty) is None  # no joins this week: K says nothing
    assert not KAlert.objects.exists() and not mail.outbox


def test_switching_the_alert_off_resolves_the_open_episode(spring, check):
    week_of(spring, DAY, joined=10, referred=1, visitors=20)
    assert check(spring) is not None
    Campaign.objects.filter(pk=spring.pk).update(k_alert_threshold=None)
    week_of(spring, DAY + timedelta(1), joined=5, referred=0, visitors=5, tag="x")
    assert check(spring, DAY + timedelta(1)) is None
    assert KAlert.objects.get().resolved_at is not None


def test_the_database_allows_one_open_episode_per_campaign(spring):
    fields = {"reason": "threshold", "k": 0.1, "i": 1, "c": 0.1, "last_k": 0.1}
    KAlert.objects.create(campaign=spring, started_on=DAY, last_checked_on=DAY, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        KAlert.objects.create(
            campaign=spring, started_on=DAY + timedelta(1), last_checked_on=DAY, **fields
        )
    KAlert.objects.update(resolved_at="2025-06-20T00:00:00Z")
    with pytest.raises(IntegrityError), transaction.atomic():  # one alert per episode
        KAlert.objects.create(campaign=spring, started_on=DAY, last_checked_on=DAY, **fields)


def test_the_email_goes_out_once_however_often_the_task_runs(spring, check):
    week_of(spring, DAY, joined=10, referred=1, visitors=20)
    alert = check(spring)
    assert len(mail.outbox) == 1
    assert k_alert_email_send(alert_id=alert.pk) is False
    tasks.send_k_alert_email.delay(alert.pk)
    assert len(mail.outbox) == 1


def test_a_failed_send_is_retried_later(spring, monkeypatch, check):
    def down(*args, **kwargs):
        raise ConnectionError("smtp down")

    monkeypatch.setattr("apps.analytics.services.send_mail", down)
    week_of(spring, DAY, joined=10, referred=1, visitors=20)
    with pytest.raises(Retry):
        check(spring)  # the email task fails and asks Celery to retry it later
    alert = KAlert.objects.get()
    assert alert.emailed_at is None  # the claim was released for the retry
    monkeypatch.undo()
    assert k_alert_email_send(alert_id=alert.pk) is True
    assert len(mail.outbox) == 1


def test_recipients_are_staff_with_the_permission_and_the_configured_list(operator, settings):
    users = get_user_model().objects
    users.create_superuser("root", "root@example.com", "pw")
    users.create_user("viewer", "viewer@example.com", "pw", is_staff=True)  # no permission
    gone = users.create_user("gone", "gone@example.com", "pw", is_staff=True, is_active=False)
    gone.user_permissions.set(operator.user_permissions.all())
    outsider = users.create_user("outsider", "out@example.com", "pw")  # not staff
    outsider.user_permissions.set(operator.user_permissions.all())
    settings.FISSION = {
        **settings.FISSION,
        "K_ALERT_EMAILS": ["growth@example.com", "olivia@example.com"],
    }
    assert sorted(alert_recipients()) == [
        "growth@example.com",
        "olivia@example.com",
        "root@example.com",
    ]


def test_the_periodic_check_covers_active_campaigns_with_a_setting(spring, operator):
    other = CampaignFactory(k_alert_drop_fraction=Decimal("0.5"))
    CampaignFactory()  # no setting
    paused = CampaignFactory(status=Campaign.Status.PAUSED, k_alert_threshold=Decimal("1"))
    assert campaigns_to_check() == [spring.pk, other.pk]
    KAlert.objects.create(
        campaign=paused, started_on=DAY, last_checked_on=DAY, reason="threshold",
        k=0.1, i=1, c=0.1, last_k=0.1,
    )  # fmt: skip
    assert campaigns_to_check() == [spring.pk, other.pk, paused.pk]  # to resolve it


def test_the_periodic_task_checks_yesterday(spring, committed):
    from django.utils import timezone

    yesterday = timezone.localdate() - timedelta(days=1)
    week_of(spring, yesterday, joined=10, referred=1, visitors=20)
    with committed():
        tasks.check_k_alerts.delay()
    alert = KAlert.objects.get()
    assert alert.started_on == yesterday and len(mail.outbox) == 1
    with committed():
        tasks.check_k_alerts.delay()
    assert KAlert.objects.count() == 1 and len(mail.outbox) == 1


def test_bulk_clicks_helper_still_counts(spring, check):
    """Guard for the builders: visitors come from clicks, as the alert reads them."""
    person = bulk_people(spring, 1, when=day_start(DAY))[0]
    bulk_clicks(person, 3, when=day_start(DAY))
    assert check(spring) is not None and KAlert.objects.get().i == 3.0
