"""The fraud rules: each looks at a join (or, periodically, at a referrer's friends) and
may return a finding: a reason code, a score, a sentence for the operator and evidence.

The join-time rules run inside `participant_join`, before the row is written, so that a
flagged referee never counts toward a tier, not even for a moment. They cost at most a
few indexed reads: the campaign's settings (remembered by each process for a few
seconds), one count over the join-network index (both burst rules at once), one bounded
read of the referrer's latest referees, and, only when something fired, the allowlist.

Evidence holds counts and which signals matched: never an address, a hash, or another
person's details (it is shown to the person in their data export).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS
from django.db.models import Count, Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.campaigns.models import Campaign
from apps.common.emails import email_domain
from apps.common.ip import in_networks, ip_hashes, network_hashes
from apps.common.memory import Remembered
from apps.common.useragents import ua_class
from apps.referrals.models import FraudFlag, Participant

from .models import AllowlistEntry, AllowlistKind, FraudRule, FraudRuleSetting, RuleAction


@dataclass(frozen=True)
class RuleConfig:
    action: str
    score: int
    threshold: int = 0
    window: timedelta = timedelta(0)
    min_share: Decimal = Decimal(0)


# Defaults, when a campaign has no setting for a rule. Every rule flags for review: a
# person decides; blocking is the operator's choice per campaign.
DEFAULTS: dict[str, RuleConfig] = {
    # Joining through one's own link from the same browser (the visitor cookie), or from
    # the same address with the same kind of device.
    FraudRule.SELF_REFERRAL: RuleConfig(action=RuleAction.FLAG, score=80),
    FraudRule.DISPOSABLE_EMAIL: RuleConfig(action=RuleAction.FLAG, score=50),
    # The 5th join from one address within 10 minutes (the rate limit refuses the 11th).
    FraudRule.IP_BURST: RuleConfig(
        action=RuleAction.FLAG, score=40, threshold=5, window=timedelta(minutes=10)
    ),
    # The 20th join from one /24 (IPv6: /48) within 10 minutes.
    FraudRule.NETWORK_BURST: RuleConfig(
        action=RuleAction.FLAG, score=25, threshold=20, window=timedelta(minutes=10)
    ),
    # The 10th friend of one inviter within a minute: nobody's friends each get the link,
    # open it and type their address that fast; scripts do.
    FraudRule.REFERRAL_VELOCITY: RuleConfig(
        action=RuleAction.FLAG, score=50, threshold=10, window=timedelta(minutes=1)
    ),
    # An inviter with at least 5 friends who joined more than 30 days ago, 80 % of whom
    # never came back (no verified sign-up, no purchase).
    FraudRule.DEAD_REFERRALS: RuleConfig(
        action=RuleAction.FLAG,
        score=40,
        threshold=5,
        window=timedelta(days=30),
        min_share=Decimal("0.80"),
    ),
}
# Signal-sharing rules an allowlisted office or household is exempt from.
ALLOWLIST_EXEMPT = frozenset(
    {
        FraudRule.SELF_REFERRAL,
        FraudRule.DISPOSABLE_EMAIL,
        FraudRule.IP_BURST,
        FraudRule.NETWORK_BURST,
    }
)


# Each campaign's rules, remembered by each process for RULES_SECONDS: every join reads
# them, operators rarely change them. A change made here is seen at once (the receivers
# below); other processes see it within RULES_SECONDS.
_remembered: Remembered[int, dict[str, RuleConfig]] = Remembered(limit=10_000)
RULES_SECONDS = 5.0


def campaign_rules(campaign_id: int) -> dict[str, RuleConfig]:
    """The campaign's rules: its settings over the defaults (one indexed read, at most
    every RULES_SECONDS per process). Read-only: the dict is shared."""
    rules = _remembered.get(campaign_id)
    if rules is None:
        rules = _remembered.put(campaign_id, _read_rules(campaign_id), RULES_SECONDS)
    return rules


def campaign_rules_forget(campaign_id: int | None = None) -> None:
    """Forget what this process remembers of a campaign's rules (or of all: tests)."""
    _remembered.forget(campaign_id)


@receiver([post_save, post_delete], sender=FraudRuleSetting)
def _setting_changed(sender: type, instance: FraudRuleSetting, **kwargs: Any) -> None:
    campaign_rules_forget(instance.campaign_id)


def _read_rules(campaign_id: int) -> dict[str, RuleConfig]:
    rules = dict(DEFAULTS)
    for setting in FraudRuleSetting.objects.filter(campaign_id=campaign_id):
        default = DEFAULTS[setting.rule]
        rules[setting.rule] = RuleConfig(
            action=setting.action,
            score=default.score,
            threshold=setting.threshold or default.threshold,
            window=setting.window or default.window,
            min_share=default.min_share if setting.min_share is None else setting.min_share,
        )
    return rules


@dataclass(frozen=True)
class Finding:
    code: str
    score: int
    reason: str
    action: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JoinSignals:
    """What a join looks like to the rules. `client_ip` is the raw address, used only to
    check the allowlist and to hash; it is never stored."""

    email_normalized: str
    client_ip: str = ""
    ip_hashes: tuple[str, ...] = ()  # under the current key first, then the fallbacks
    network_hashes: tuple[str, ...] = ()
    visitor_id: str = ""
    ua_class: str = ""

    @classmethod
    def build(
        cls,
        *,
        email_normalized: str,
        client_ip: str = "",
        ip_hash: str = "",
        visitor_id: str = "",
        user_agent: str = "",
    ) -> JoinSignals:
        hashes = ip_hashes(client_ip) if client_ip else ((ip_hash,) if ip_hash else ())
        return cls(
            email_normalized=email_normalized,
            client_ip=client_ip,
            ip_hashes=hashes,
            network_hashes=network_hashes(client_ip),
            visitor_id=visitor_id[:64],
            ua_class=ua_class(user_agent) if user_agent else "",
        )

    @property
    def ip_hash(self) -> str:
        return self.ip_hashes[0] if self.ip_hashes else ""

    @property
    def network_hash(self) -> str:
        return self.network_hashes[0] if self.network_hashes else ""


def is_disposable(domain: str) -> bool:
    """Whether `domain` or a domain above it is a known throwaway-mail domain."""
    labels = domain.split(".")
    return any(".".join(labels[n:]) in DISPOSABLE_DOMAINS for n in range(len(labels) - 1))


def screen_join(
    *,
    campaign: Campaign,
    referrer: Participant | None,
    signals: JoinSignals,
    now: datetime,
) -> list[Finding]:
    """The join-time rules' findings for a new participant of `campaign`."""
    rules = campaign_rules(campaign.pk)
    findings: list[Finding] = []

    def on(rule: str) -> bool:
        return rules[rule].action != RuleAction.OFF

    def finding(rule: str, reason: str, score: int | None = None, **evidence: Any) -> Finding:
        config = rules[rule]
        return Finding(
            code=rule,
            score=config.score if score is None else score,
            reason=reason,
            action=config.action,
            evidence=evidence,
        )

    if referrer is not None and on(FraudRule.SELF_REFERRAL):
        matched = []
        if signals.visitor_id and referrer.join_visitor_id == signals.visitor_id:
            matched.append("visitor_cookie")
        if (
            referrer.join_ip_hash
            and referrer.join_ip_hash in signals.ip_hashes
            and signals.ua_class
            and referrer.join_ua_class == signals.ua_class
        ):
            matched.append("ip_and_device")
        if matched:
            config = rules[FraudRule.SELF_REFERRAL]
            # The browser's own cookie is near proof; a shared address and device class
            # is also what a household or a carrier's NAT looks like.
            score = config.score if "visitor_cookie" in matched else config.score * 5 // 8
            findings.append(
                finding(
                    FraudRule.SELF_REFERRAL,
                    "Joined through their inviter's link from the inviter's own browser"
                    if "visitor_cookie" in matched
                    else "Joined from the inviter's address with the same kind of device",
                    score=score,
                    matched=matched,
                )
            )

    if on(FraudRule.DISPOSABLE_EMAIL):
        domain = email_domain(signals.email_normalized)
        if is_disposable(domain):
            findings.append(
                finding(
                    FraudRule.DISPOSABLE_EMAIL,
                    f"Uses a throwaway email domain ({domain})",
                    domain=domain,
                )
            )

    findings += _bursts(campaign, signals, rules, now, finding)

    if referrer is not None and on(FraudRule.REFERRAL_VELOCITY):
        config = rules[FraudRule.REFERRAL_VELOCITY]
        # Bounded: a viral inviter's thousands of friends are not all read.
        recent = len(
            Participant.objects.filter(
                referrer_id=referrer.pk, joined_at__gte=now - config.window
            ).values_list("id", flat=True)[: config.threshold]
        )
        if recent + 1 >= config.threshold:
            findings.append(
                finding(
                    FraudRule.REFERRAL_VELOCITY,
                    f"Their inviter's friends joined {recent + 1} within "
                    f"{_span(config.window)}: faster than people do",
                    friends_in_window=recent + 1,
                    window_seconds=int(config.window.total_seconds()),
                )
            )

    if any(f.code in ALLOWLIST_EXEMPT for f in findings) and allowlisted(
        campaign.pk, signals.client_ip, signals.email_normalized
    ):
        findings = [f for f in findings if f.code not in ALLOWLIST_EXEMPT]
    return findings


def _bursts(
    campaign: Campaign,
    signals: JoinSignals,
    rules: dict[str, RuleConfig],
    now: datetime,
    finding: Any,
) -> list[Finding]:
    """Both burst rules from one count over the join-network index: an address is inside
    its network, so the joins of the network in the longer window include the address's."""
    enabled = [
        rule
        for rule in (FraudRule.IP_BURST, FraudRule.NETWORK_BURST)
        if rules[rule].action != RuleAction.OFF
    ]
    if not enabled or not signals.network_hashes:
        return []
    ip_rule, net_rule = rules[FraudRule.IP_BURST], rules[FraudRule.NETWORK_BURST]
    longest = max(rules[rule].window for rule in enabled)
    counts = Participant.objects.filter(
        campaign_id=campaign.pk,
        join_network_hash__in=signals.network_hashes,
        joined_at__gte=now - longest,
    ).aggregate(
        address=Count(
            "id",
            filter=Q(join_ip_hash__in=signals.ip_hashes, joined_at__gte=now - ip_rule.window),
        ),
        network=Count("id", filter=Q(joined_at__gte=now - net_rule.window)),
    )
    found = []
    if FraudRule.IP_BURST in enabled and counts["address"] + 1 >= ip_rule.threshold:
        found.append(
            finding(
                FraudRule.IP_BURST,
                f"{counts['address'] + 1} joins from one address within {_span(ip_rule.window)}",
                joins_in_window=counts["address"] + 1,
                window_seconds=int(ip_rule.window.total_seconds()),
            )
        )
    if FraudRule.NETWORK_BURST in enabled and counts["network"] + 1 >= net_rule.threshold:
        found.append(
            finding(
                FraudRule.NETWORK_BURST,
                f"{counts['network'] + 1} joins from one network within {_span(net_rule.window)}",
                joins_in_window=counts["network"] + 1,
                window_seconds=int(net_rule.window.total_seconds()),
            )
        )
    return found


def allowlisted(campaign_id: int, client_ip: str, email_normalized: str) -> bool:
    """Whether the join comes from an allowlisted network or email domain (entries of
    this campaign and of every campaign)."""
    domain = email_domain(email_normalized)
    networks: list[str] = []
    for kind, value in AllowlistEntry.objects.filter(
        Q(campaign_id=campaign_id) | Q(campaign__isnull=True)
    ).values_list("kind", "value"):
        if kind == AllowlistKind.DOMAIN and (domain == value or domain.endswith("." + value)):
            return True
        if kind == AllowlistKind.NETWORK:
            networks.append(value)
    return bool(client_ip and networks and in_networks(client_ip, networks))


def status_for(findings: list[Finding]) -> str:
    """The participant's status after these findings: the strongest action wins."""
    actions = {f.action for f in findings}
    if RuleAction.BLOCK in actions:
        return Participant.Status.BLOCKED
    if RuleAction.FLAG in actions:
        return Participant.Status.FLAGGED
    return Participant.Status.ACTIVE


def flags_for(participant: Participant, findings: list[Finding]) -> list[FraudFlag]:
    return [
        FraudFlag(
            participant=participant,
            code=f.code,
            score=f.score,
            reason=f.reason[:300],
            action=f.action,
            evidence=f.evidence,
        )
        for f in findings
        if f.action != RuleAction.OFF
    ]


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


__all__ = [
    "DEFAULTS",
    "Finding",
    "JoinSignals",
    "RuleConfig",
    "allowlisted",
    "campaign_rules",
    "flags_for",
    "is_disposable",
    "screen_join",
    "status_for",
]
