"""Security headers on every public page, no inline script, and friendly error pages."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def public_pages(copy, alice):
    return [
        f"/r/{alice.code}",
        "/c/spring/",
        f"/p/{alice.token}/",
        f"/p/{alice.token}/qr.svg",
        f"/p/{alice.token}/qr.png",
        f"/p/{alice.token}/poster.png",
        "/r/zzzzzzzz",
        "/p/nothing/",
        "/healthz",
    ]


def test_every_public_page_sends_the_security_headers(phone, public_pages):
    for path in public_pages:
        response = phone.get(path)
        csp = response["Content-Security-Policy"]
        assert "default-src 'self'" in csp, path
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, path
        assert response["X-Content-Type-Options"] == "nosniff", path
        assert response["Referrer-Policy"] == "strict-origin-when-cross-origin", path
        assert response["X-Frame-Options"] == "DENY", path


def test_the_join_response_sends_them_too(phone, copy):
    response = phone.post("/c/spring/join", {"email": "x@example.com", "consent": "on"})
    assert response.status_code == 303 and "Content-Security-Policy" in response


def test_pages_have_no_inline_script_or_style(phone, copy, alice):
    for path in ("/c/spring/", f"/p/{alice.token}/", "/r/zzzzzzzz"):
        html = phone.get(path).content.decode()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert 'src="/static/' in tag, (path, tag)
        assert not re.search(r"<script\b[^>]*>(?!</script>)", html), path
        assert " style=" not in html and "<style" not in html, path
        assert re.search(r"\son[a-z]+=", html) is None, path


def test_the_pages_are_built_for_phones(phone, copy, alice):
    for path in ("/c/spring/", f"/p/{alice.token}/"):
        html = phone.get(path).content.decode()
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
        assert 'href="/static/fission/site.css"' in html


def test_every_form_input_has_a_label(phone, copy):
    html = phone.get("/c/spring/").content.decode()
    ids = re.findall(r'<input type="(?:email|text|checkbox)"[^>]*\sid="([^"]+)"', html)
    assert sorted(ids) == ["id_consent", "id_email", "id_name"]
    for input_id in ids:
        assert f'<label for="{input_id}">' in html


def test_a_server_error_is_a_friendly_500_page(copy, monkeypatch):
    def broken(slug):
        raise RuntimeError("database exploded: secret detail")

    monkeypatch.setattr("apps.landing.views.campaign_get", broken)
    client = Client(raise_request_exception=False)
    response = client.get("/c/spring/")
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in html
    assert "secret detail" not in html and "Traceback" not in html


def test_the_500_page_is_in_chinese_for_a_chinese_browser(copy, monkeypatch):
    def broken(slug):
        raise RuntimeError("boom")

    monkeypatch.setattr("apps.landing.views.campaign_get", broken)
    client = Client(raise_request_exception=False, HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert "出错了" in client.get("/c/spring/").content.decode()


def test_the_404_page_is_in_chinese_for_a_chinese_browser(phone):
    response = phone.get("/r/zzzzzzzz", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert response.status_code == 404
    assert "这个链接打不开" in response.content.decode()


def test_an_unknown_address_under_the_api_gets_the_contracts_json(client):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_an_unknown_address_elsewhere_gets_the_friendly_page(client):
    response = client.get("/wp-login.php")
    assert response.status_code == 404 and "Page not found" in response.content.decode()
