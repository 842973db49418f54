"""Writes for data-subject rights (PIPL arts. 45 and 47, GDPR arts. 15, 17 and 20):
erasing a person's personal data, and sending them a copy of everything held.

Erasure keeps the participant's row, because the referral tree and the books need it
(the tree is append-only; rewards and conversions are financial records): the row keeps
its place in the tree, its status and dates, and loses everything that says who it was.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta

import redis
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.utils import timezone, translation

from apps.analytics.rollup import visitor_renamed
from apps.common.codes import new_invite_code, new_token
from apps.common.errors import FissionError, NotFound
from apps.notifications.models import Message
from apps.referrals import clickbuffer
from apps.referrals.models import Click, Participant
from apps.referrals.selectors import invite_code_forget

from .models import DataExportRequest, ErasureLog
from .selectors import person_export, same_person

logger = logging.getLogger(__name__)

# RFC 2606 reserves .invalid: these addresses can never receive mail.
ERASED_DOMAIN = "erased.invalid"
ATTEMPTS = 5


def is_erased(participant: Participant) -> bool:
    return participant.email_normalized.endswith("@" + ERASED_DOMAIN)


@transaction.atomic
def participant_erase(*, participant_id: int, actor: str) -> ErasureLog:
    """Erase a participant's personal data; idempotent (a second call returns the first
    erasure's log).

    Gone: email (replaced by a unique placeholder at a domain that takes no mail, so the
    per-campaign uniqueness still holds), name, external id, the join's IP hashes,
    visitor id and device class, and in the visits made from their browser the visitor
    id (replaced by a fresh random one, so visitor counts stay as they were), the IP hash
    and the device class. Their invite code and page token are replaced, so old links
    (within INVITE_CACHE_SECONDS in web processes that remembered the code) and the
    personal page lead nowhere, and no message is sent to them again.

    Kept: the node (referrer, depth, path, referrals), status and dates, fraud flags
    (their evidence holds no personal data), conversions and rewards with their amounts
    and history: the books still add up, to nobody in particular. The log of messages
    sent keeps what was sent and when, without the subjects (they can hold names).
    """
    participant = Participant.objects.select_for_update().filter(pk=participant_id).first()
    if participant is None:
        raise NotFound(f"No participant {participant_id}.", code="participant_not_found")
    done = ErasureLog.objects.filter(participant=participant).first()
    if done is not None:
        return done
    from apps.landing.images import forget_cached_images  # the poster shows their name

    forget_cached_images(participant)
    scrubbed = 0
    if participant.join_visitor_id:
        _write_buffered_clicks()
        renamed = secrets.token_urlsafe(16)
        with transaction.atomic():
            # The visitor stays one visitor (the K report's count does not change),
            # under an id that leads nowhere; the report's roll-up follows.
            scrubbed = Click.objects.filter(
                campaign_id=participant.campaign_id, visitor_id=participant.join_visitor_id
            ).update(visitor_id=renamed, ip_hash="", ua_class="other")
            visitor_renamed(participant.campaign_id, participant.join_visitor_id, renamed)
    # Message subjects carry names ("Bob joined through your link"): the person's own
    # and those that named them to their inviter; a delivery error may quote the address.
    Message.objects.filter(participant=participant).update(subject="", error="")
    Message.objects.filter(friend=participant).update(subject="")
    placeholder = f"erased-{participant.pk}-{secrets.token_hex(6)}@{ERASED_DOMAIN}"
    for attempt in range(ATTEMPTS):
        try:
            with transaction.atomic():
                Participant.objects.filter(pk=participant.pk).update(
                    email=placeholder,
                    email_normalized=placeholder,
                    name="",
                    external_id=None,
                    code=new_invite_code(settings.FISSION["INVITE_CODE_LENGTH"]),
                    token=new_token(),
                    join_ip_hash="",
                    join_network_hash="",
                    join_visitor_id="",
                    join_ua_class="",
                    consent_withdrawn_at=Coalesce(F("consent_withdrawn_at"), timezone.now()),
                )
            break
        except IntegrityError:  # a new code or token collided: draw again
            if attempt == ATTEMPTS - 1:
                raise
    invite_code_forget(participant.code)
    return ErasureLog.objects.create(
        participant=participant,
        campaign_id=participant.campaign_id,
        actor=actor[:150],
        clicks_scrubbed=scrubbed,
    )


def _write_buffered_clicks() -> None:
    """Clicks still in the click buffer (CLICK_BUFFER_URL) are written first, so that the
    scrub sees every visit made from the person's browser until now. Best effort: with
    Redis unreachable the clicks wait there, as would clicks made after the erasure."""
    if not clickbuffer.enabled():
        return
    try:
        clickbuffer.flush()
    except redis.RedisError as exc:
        logger.warning("click buffer not written before an erasure: %s", exc)


class TooManyExports(FissionError):
    code = "too_many_exports"
    status = 429


@transaction.atomic
def data_export_request(*, participant: Participant) -> DataExportRequest:
    """The person asked (on their personal page) for their data: queue an email to
    their address with everything held about them. At most DATA_EXPORTS_PER_DAY a day
    (TooManyExports otherwise); the participant's row is locked while counting, so two
    requests at once cannot both slip under the limit."""
    Participant.objects.select_for_update().filter(pk=participant.pk).values("pk").first()
    if is_erased(participant):
        raise NotFound("This participant's data was erased.", code="participant_erased")
    since = timezone.now() - timedelta(days=1)
    recent = DataExportRequest.objects.filter(participant=participant, requested_at__gte=since)
    if recent.count() >= settings.FISSION["DATA_EXPORTS_PER_DAY"]:
        raise TooManyExports("You asked for your data a short while ago; try again tomorrow.")
    request = DataExportRequest.objects.create(participant=participant)
    from .tasks import send_data_export

    transaction.on_commit(lambda: send_data_export.delay(request.pk))
    return request


def data_export_send(*, request_id: int) -> bool:
    """Email the export to the participant's own address, once: the conditional UPDATE
    claims the request, so a retried task or two workers cannot both send it. Returns
    whether it was sent now."""
    claimed = DataExportRequest.objects.filter(pk=request_id, sent_at__isnull=True).update(
        sent_at=timezone.now()
    )
    if not claimed:
        return False
    request = DataExportRequest.objects.select_related("participant__campaign").get(pk=request_id)
    participant = request.participant
    if is_erased(participant):
        logger.info("Data export %s not sent: the participant was erased since.", request_id)
        return False
    data = person_export(same_person(participant))
    language = participant.language or settings.LANGUAGE_CODE
    with translation.override(language):
        context = {"participant": participant, "campaign": participant.campaign}
        subject = translation.gettext("Your data from %(campaign)s") % {
            "campaign": participant.campaign.name
        }
        body = render_to_string("trust/export_email.txt", context)
    message = EmailMessage(subject=subject, body=body, to=[participant.email])
    message.attach(
        f"fission-data-{participant.code}.json",
        json.dumps(data, ensure_ascii=False, indent=2),
        "application/json",
    )
    try:
        message.send()
    except Exception:
        # Not sent: release the claim so that the task's retry sends it.
        DataExportRequest.objects.filter(pk=request_id).update(sent_at=None)
        raise
    return True
