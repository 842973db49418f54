from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.campaigns.models import Campaign
from apps.campaigns.services import campaign_save
from apps.referrals.models import Participant
from apps.referrals.services import participant_join

SLUG = "demo"
ADMIN = "admin"
PASSWORD_FILE = settings.VAR_DIR / "demo_admin_password"

LANDING = {
    "en": {
        "headline": "Invite friends, earn rewards",
        "body": "Share your link. When friends join and buy, you both win: "
        "a coupon at 3 friends, membership at 5, VIP at 10.",
        "reward_text": "Your friend gets a 20 CNY coupon on their first order.",
    },
    "zh-hans": {
        "headline": "邀请好友，一起赢奖励",
        "body": "分享你的专属链接。好友加入并下单，你们都有奖励："
        "3 位好友得优惠券，5 位升级会员，10 位成为 VIP。",
        "reward_text": "好友首单立减 20 元。",
    },
}
PEOPLE = [  # (name, email, referrer's email)
    ("Alice Wang", "alice@example.com", None),
    ("Bob Li", "bob@example.com", "alice@example.com"),
    ("Carol Zhang", "carol@example.com", "bob@example.com"),
    ("Dave Chen", "dave@example.com", "alice@example.com"),
]


class Command(BaseCommand):
    help = "Create the demo campaign, its tiers, a few participants and an admin login. Idempotent."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        campaign = Campaign.objects.filter(slug=SLUG).first()
        if campaign is None:
            campaign = campaign_save(
                fields={
                    "slug": SLUG,
                    "name": "Spring invite (demo)",
                    "status": Campaign.Status.ACTIVE,
                    "qualifying_event": Campaign.QualifyingEvent.PURCHASE,
                    "min_purchase_amount": Decimal("10.00"),
                    "currency": "CNY",
                    "attribution_window_days": 30,
                    "holding_days": 14,
                },
                tiers=[
                    {
                        "threshold": 3,
                        "kind": "coupon",
                        "amount": Decimal("50.00"),
                        "currency": "CNY",
                        "description": "50 CNY coupon",
                    },
                    {
                        "threshold": 5,
                        "kind": "membership",
                        "amount": Decimal(0),
                        "currency": "CNY",
                        "description": "Member for a year",
                    },
                    {
                        "threshold": 10,
                        "kind": "custom",
                        "amount": Decimal(0),
                        "currency": "CNY",
                        "description": "VIP status",
                    },
                ],
                referee_reward={
                    "kind": "coupon",
                    "amount": Decimal("20.00"),
                    "currency": "CNY",
                    "description": "20 CNY off the first order",
                },
                commission_percents=[Decimal("10.0"), Decimal("5.0")],
                landing={"language": "en", **LANDING["en"]},
            )
            campaign_save(
                campaign=campaign, fields={}, landing={"language": "zh-hans", **LANDING["zh-hans"]}
            )
        people: dict[str, Participant] = {}
        for name, email, referrer in PEOPLE:
            people[email], _ = participant_join(
                campaign=campaign,
                email=email,
                name=name,
                referrer=people.get(referrer or ""),
                consent=True,
                consent_version="demo",
                channel="demo",
                require_open=False,
            )
        password = self._admin_password()
        alice = people["alice@example.com"]
        site = settings.SITE_URL
        lines = [
            "",
            "Fission demo is ready.",
            f"  Admin:          {site}/admin/",
            f"  Login:          {ADMIN} / {password}"
            if password
            else f"  Login:          {ADMIN} (password unchanged)",
            f"  Landing page:   {site}/c/{campaign.slug}/",
            f"  Alice's invite: {site}/r/{alice.code}",
            f"  Alice's page:   {site}/p/{alice.token}/",
            f"  API docs:       {site}/api/docs/",
            "  API key:        .venv/bin/python manage.py create_api_key demo",
            "",
        ]
        self.stdout.write("\n".join(lines))

    def _admin_password(self) -> str | None:
        """The demo admin's password: made once and kept under var/, so that every
        `make run` prints the same working login. An admin made by hand is left alone."""
        user_model = get_user_model()
        if PASSWORD_FILE.exists():
            password = PASSWORD_FILE.read_text().strip()
        else:
            if user_model.objects.filter(username=ADMIN).exists():
                return None
            password = secrets.token_urlsafe(12)
            PASSWORD_FILE.parent.mkdir(exist_ok=True)
            PASSWORD_FILE.write_text(password)
            PASSWORD_FILE.chmod(0o600)
        user = user_model.objects.filter(username=ADMIN).first()
        if user is None:
            user_model.objects.create_superuser(ADMIN, "admin@example.com", password)
        return password
