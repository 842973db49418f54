"""The operator's side: texts with placeholders, the preview, the message log."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.notifications.models import CampaignMessage, Message, MessageText
from apps.notifications.services import notify_joined
from apps.notifications.texts import DEFAULTS, fill, validate

pytestmark = pytest.mark.django_db
ADD = "/admin/notifications/campaignmessage/add/"


def form(campaign, kind, *texts, enabled="on"):
    data = {
        "campaign": campaign.pk,
        "kind": kind,
        "texts-TOTAL_FORMS": len(texts),
        "texts-INITIAL_FORMS": 0,
        "texts-MIN_NUM_FORMS": 0,
        "texts-MAX_NUM_FORMS": 1000,
    }
    if enabled:
        data["enabled"] = enabled
    for n, (language, subject, body) in enumerate(texts):
        data.update(
            {
                f"texts-{n}-language": language,
                f"texts-{n}-subject": subject,
                f"texts-{n}-body": body,
            }
        )
    return data


def test_the_operator_writes_a_message_in_two_languages(admin_client, campaign):
    response = admin_client.post(
        ADD,
        form(
            campaign,
            "friend_joined",
            ("en", "{friend} is in!", "Hi {name}, {friend} joined. {personal_link}"),
            ("zh-hans", "{friend} 加入了！", "{name}，{friend} 加入了。{personal_link}"),
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    message = CampaignMessage.objects.get(campaign=campaign, kind="friend_joined")
    assert sorted(message.texts.values_list("language", flat=True)) == ["en", "zh-hans"]


@pytest.mark.parametrize(
    ("subject", "body", "reason"),
    [
        ("Hi", "Hello {nmae}", "Unknown placeholder {nmae}. This message can use: {name}"),
        ("Hi {reward}", "Hello", "Unknown placeholder {reward}"),  # not for this kind
        ("Hi", "Hello {name.__class__}", "{name.__class__} is not allowed"),
        ("Hi", "Hello {name[0]}", "{name[0]} is not allowed"),
        ("Hi", "Hello {name!r}", "{name!r} is not allowed"),
        ("Hi", "Hello {name:>30}", "{name:&gt;30} is not allowed"),
        ("Hi", "Hello {0}", "{0} is not allowed"),
        ("Hi", "Hello {}", "Empty braces {} are not a placeholder"),
        ("Hi", "Hello {name", "A brace is not closed or not opened"),
        ("Hi", "Hello }", "A brace is not closed or not opened"),
    ],
)
def test_a_text_with_a_bad_placeholder_is_refused_with_the_reason(
    admin_client, campaign, subject, body, reason
):
    response = admin_client.post(ADD, form(campaign, "friend_joined", ("en", subject, body)))
    assert response.status_code == 200
    assert reason in response.content.decode()
    assert not CampaignMessage.objects.exists() and not MessageText.objects.exists()


def test_a_text_added_later_is_checked_too(admin_client, campaign):
    message = CampaignMessage.objects.create(campaign=campaign, kind="welcome")
    data = form(campaign, "welcome", ("en", "Hi", "Join via {verify_link}"))
    response = admin_client.post(f"/admin/notifications/campaignmessage/{message.pk}/change/", data)
    assert response.status_code == 200
    assert "Unknown placeholder {verify_link}" in response.content.decode()
    assert not message.texts.exists()


def test_the_verification_email_must_carry_its_link_and_stay_on(admin_client, campaign):
    response = admin_client.post(ADD, form(campaign, "verify", ("en", "Confirm", "Hi {name}")))
    assert "This message must contain {verify_link}." in response.content.decode()
    response = admin_client.post(ADD, form(campaign, "verify", enabled=""))
    assert "cannot be switched off" in response.content.decode()
    assert not CampaignMessage.objects.exists()


def test_a_subject_is_one_line():
    with pytest.raises(ValidationError) as error:
        validate(kind="welcome", subject="Hi\r\nBcc: x@example.com", body="Hi")
    assert "The subject must be one line." in error.value.message_dict["subject"]


def test_the_default_texts_are_valid_in_both_languages():
    from django.utils import translation

    for kind, default in DEFAULTS.items():
        for language in ("en", "zh-hans"):
            with translation.override(language):
                subject, body = str(default.subject), str(default.body)
                validate(kind=kind, subject=subject, body=body)
                chinese = any("\u4e00" <= ch <= "\u9fff" for ch in subject + body)
                assert chinese == (language == "zh-hans"), (kind, language)


def test_filling_in_never_reaches_into_the_values():
    assert fill("{name.upper} {name} {{x}}", {"name": "Al"}) == "{name.upper} Al {x}"
    assert fill("{unknown}", {}) == "{unknown}"


def test_each_message_has_a_preview_with_sample_data(admin_client, copy):
    message = CampaignMessage.objects.create(campaign=copy, kind="welcome")
    MessageText.objects.create(
        message=message, language="en", subject="Hey {name}", body="Link: {invite_link} <b>"
    )
    change = admin_client.get(f"/admin/notifications/campaignmessage/{message.pk}/change/")
    preview_url = f"/admin/notifications/campaignmessage/preview/{copy.pk}/welcome/"
    listing = admin_client.get("/admin/notifications/campaignmessage/").content.decode()
    assert preview_url in listing and "Preview with sample data" in listing
    assert preview_url in change.content.decode()
    assert "{invite_link}" in change.content.decode()  # the placeholders are listed

    html = admin_client.get(preview_url).content.decode()
    assert html.count('data-testid="preview"') == 2
    assert '<span data-testid="subject">Hey Alice</span>' in html
    assert "Link: http://testserver/r/k7m2x9qa &lt;b&gt;" in html
    # The default Chinese text, with the campaign's Chinese headline.
    assert "欢迎参加「邀请好友，一起赢奖励」：这是你的邀请链接" in html
    assert 'sandbox title="HTML part"' in html and "data:image/png;base64," in html


@pytest.mark.parametrize("kind", ["verify", "friend_qualified", "reward_approved", "one_away"])
def test_defaults_can_be_previewed_for_every_kind(admin_client, campaign, kind):
    response = admin_client.get(
        f"/admin/notifications/campaignmessage/preview/{campaign.pk}/{kind}/"
    )
    assert response.status_code == 200
    assert "{" not in response.content.decode().split('data-testid="subject">')[1].split("<")[0]


def test_a_preview_of_nothing_is_404(admin_client, campaign):
    url = "/admin/notifications/campaignmessage/preview/"
    assert admin_client.get(f"{url}{campaign.pk}/nonsense/").status_code == 404
    assert admin_client.get(f"{url}999999/welcome/").status_code == 404


def test_the_preview_is_for_staff_only(client, campaign):
    response = client.get(f"/admin/notifications/campaignmessage/preview/{campaign.pk}/welcome/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_participants_page_shows_their_messages(
    admin_client, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notify_joined(participant=alice, verify_email=False)
    Message.objects.filter(participant=alice).update(error="")
    html = admin_client.get(f"/admin/referrals/participant/{alice.pk}/change/").content.decode()
    assert "Messages sent" in html
    assert "Welcome to Spring invite: your invite link" in html


def test_the_message_log_lists_and_filters_by_participant(
    admin_client, alice, bob, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notify_joined(participant=alice, verify_email=False)
        notify_joined(participant=bob, verify_email=False)
    html = admin_client.get(
        f"/admin/notifications/message/?participant__id__exact={alice.pk}"
    ).content.decode()
    assert "Welcome to Spring invite" in html
    assert "Bob joined through your link" in html
    assert html.count('class="field-kind"') == 2  # alice's two, not bob's welcome
    assert admin_client.get("/admin/notifications/message/add/").status_code == 403
