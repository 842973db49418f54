"""The QR codes and the share poster."""

from __future__ import annotations

import io
import logging
import os

import pytest
from PIL import Image, ImageDraw, ImageFont
from pyzbar.pyzbar import decode

from apps.landing import poster as poster_module

pytestmark = pytest.mark.django_db


def decoded(body: bytes) -> list[str]:
    return [symbol.data.decode() for symbol in decode(Image.open(io.BytesIO(body)))]


def test_the_png_qr_code_decodes_back_to_the_invite_link(phone, alice):
    response = phone.get(f"/p/{alice.token}/qr.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert decoded(response.content) == [f"http://testserver/r/{alice.code}"]
    # One bit per pixel, for phones on slow connections: about 0.6 KB, not 1.8 KB as RGB.
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "1" and image.size[0] >= 400
    assert len(response.content) < 1000


def test_the_qr_code_follows_site_url(phone, alice, settings):
    settings.SITE_URL = "https://invite.example.cn"
    assert decoded(phone.get(f"/p/{alice.token}/qr.png").content) == [
        f"https://invite.example.cn/r/{alice.code}"
    ]


def test_the_svg_qr_code_is_an_svg(phone, alice):
    response = phone.get(f"/p/{alice.token}/qr.svg")
    assert response["Content-Type"] == "image/svg+xml"
    assert b"<svg" in response.content and b"<script" not in response.content


@pytest.mark.parametrize("name", ["qr.svg", "qr.png", "poster.png"])
def test_images_carry_an_etag_and_answer_304_when_unchanged(phone, copy, alice, name):
    first = phone.get(f"/p/{alice.token}/{name}")
    assert first["ETag"] and "max-age=3600" in first["Cache-Control"]
    again = phone.get(f"/p/{alice.token}/{name}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and not again.content
    other = phone.get(f"/p/{alice.token}/{name}", HTTP_IF_NONE_MATCH='"something-else"')
    assert other.status_code == 200


def test_each_participant_has_their_own_etag(phone, alice, bob):
    assert (
        phone.get(f"/p/{alice.token}/qr.svg")["ETag"] != phone.get(f"/p/{bob.token}/qr.svg")["ETag"]
    )


def test_the_qr_code_is_public_but_the_poster_with_a_name_is_private(phone, copy, alice):
    assert phone.get(f"/p/{alice.token}/qr.png")["Cache-Control"] == "public, max-age=3600"
    assert phone.get(f"/p/{alice.token}/poster.png")["Cache-Control"] == "private, max-age=3600"


def test_rendered_images_are_kept_in_the_cache(phone, copy, alice, monkeypatch):
    first = phone.get(f"/p/{alice.token}/poster.png").content

    def must_not_render(**kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr("apps.landing.images.render_poster", must_not_render)
    assert phone.get(f"/p/{alice.token}/poster.png").content == first


def test_the_poster_is_720_by_1280_and_its_qr_code_decodes_to_the_link(phone, copy, alice):
    response = phone.get(f"/p/{alice.token}/poster.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (720, 1280)
    assert decoded(response.content) == [f"http://testserver/r/{alice.code}"]


def test_the_poster_draws_what_it_is_given(monkeypatch, phone, copy, alice):
    seen = {}

    def spy(**texts):
        seen.update(texts)
        return b"png"

    monkeypatch.setattr("apps.landing.images.render_poster", spy)
    phone.get(f"/p/{alice.token}/poster.png", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert seen == {
        "headline": "邀请好友，一起赢奖励",
        "name_line": "Alice 邀请你",
        "url": f"http://testserver/r/{alice.code}",
        "reward": "好友首单立减 20 元。",
        "caption": "扫码加入",
    }


def _drawn(font, text: str) -> bytes:
    image = Image.new("L", (60, 60))
    ImageDraw.Draw(image).text((5, 5), text, font=font, fill=255)
    return image.tobytes()


def test_the_poster_font_draws_chinese():
    source = poster_module.current_font_source()
    if source is None:
        if os.environ.get("CI"):
            pytest.fail("no CJK font: .ci/run installs fonts-noto-cjk")
        pytest.skip("no CJK font on this machine (apt install fonts-noto-cjk)")
    font = ImageFont.truetype(source[0], 40, index=source[1])
    missing = _drawn(font, "\U000f0000")  # a private-use character: the "no glyph" box
    assert _drawn(font, "邀") != missing and _drawn(font, "请") != missing
    assert _drawn(font, "邀") != _drawn(font, "请")


def test_a_missing_poster_font_falls_back_with_a_warning(settings, caplog, tmp_path):
    settings.FISSION = {**settings.FISSION, "POSTER_FONT": str(tmp_path / "nope.ttf")}
    with caplog.at_level(logging.WARNING, logger="apps.landing.poster"):
        source = poster_module.current_font_source()
    assert any("POSTER_FONT" in record.getMessage() for record in caplog.records)
    assert source is None or source[0] != str(tmp_path / "nope.ttf")


def test_without_any_cjk_font_the_poster_still_renders(monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(poster_module, "DEFAULT_FONTS", ())
    poster_module.font_source.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="apps.landing.poster"):
            body = poster_module.render_poster(
                headline="Invite friends",
                name_line="Alice",
                url="http://x/r/abcd",
                reward="",
                caption="Scan",
            )
    finally:
        poster_module.font_source.cache_clear()
    assert Image.open(io.BytesIO(body)).size == (720, 1280)
    assert any("fonts-noto-cjk" in record.getMessage() for record in caplog.records)


def test_a_configured_font_is_used(settings, tmp_path):
    source = poster_module.font_source("", 0)
    if source is None:
        pytest.skip("no font to copy")
    font = tmp_path / "brand.ttc"
    font.symlink_to(source[0])
    settings.FISSION = {**settings.FISSION, "POSTER_FONT": str(font), "POSTER_FONT_INDEX": 2}
    assert poster_module.current_font_source() == (str(font), 2)


def test_long_text_is_wrapped_within_the_width_and_cut_with_an_ellipsis():
    font = ImageFont.load_default(30)
    lines = poster_module.wrap("word " * 60, font, 300, max_lines=3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(font.getlength(line) <= 300 for line in lines)
    assert poster_module.wrap("一" * 40, font, 200, max_lines=10)[0] != "一" * 40


def test_a_qr_code_drawn_once_costs_no_query_and_no_drawing(
    phone, alice, monkeypatch, django_assert_num_queries
):
    first = phone.get(f"/p/{alice.token}/qr.png").content

    def must_not_draw(url: str) -> bytes:
        raise AssertionError("drawn again")

    monkeypatch.setattr("apps.landing.images.qr_png", must_not_draw)
    with django_assert_num_queries(0):
        assert phone.get(f"/p/{alice.token}/qr.png").content == first


def test_a_qr_code_in_the_shared_cache_is_not_drawn_again(phone, alice, monkeypatch):
    from apps.landing.images import qr_memory_forget

    first = phone.get(f"/p/{alice.token}/qr.svg").content
    qr_memory_forget()  # another web process: only the shared cache has it
    monkeypatch.setattr("apps.landing.images.qr_svg", lambda url: b"drawn again")
    assert phone.get(f"/p/{alice.token}/qr.svg").content == first


def test_unknown_tokens_have_no_qr_code(phone, db):
    assert phone.get("/p/" + "x" * 32 + "/qr.png").status_code == 404
    assert phone.get("/p/short/qr.svg").status_code == 404


def test_an_erased_persons_old_qr_code_leads_nowhere(phone, alice):
    from apps.trust.privacy import participant_erase

    assert phone.get(f"/p/{alice.token}/qr.png").status_code == 200
    participant_erase(participant_id=alice.pk, actor="dpo")
    assert phone.get(f"/p/{alice.token}/qr.png").status_code == 404


def test_the_svg_qr_code_decodes_back_to_the_invite_link(phone, alice):
    """Each rectangle of the path drawn 10 pixels to a module, then read by a scanner."""
    import re

    svg = phone.get(f"/p/{alice.token}/qr.svg").content.decode()
    size = int(re.search(r'viewBox="0 0 (\d+) \1"', svg).group(1))
    image = Image.new("L", (size * 10, size * 10), 255)
    draw = ImageDraw.Draw(image)
    runs = re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", re.search(r'<path d="([^"]*)"', svg).group(1))
    assert runs
    for x, y, width in ((int(a), int(b), int(c)) for a, b, c in runs):
        draw.rectangle([x * 10, y * 10, (x + width) * 10 - 1, y * 10 + 9], fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert decoded(buffer.getvalue()) == [f"http://testserver/r/{alice.code}"]
