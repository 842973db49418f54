from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import RequestFactory, override_settings

from apps.common.codes import CODE_ALPHABET, is_invite_code, is_token, new_invite_code, new_token
from apps.common.emails import normalize_email
from apps.common.ip import client_ip, ip_hash, network_hash
from apps.common.money import format_amount, minor_units, parse_amount, percent_of, quantize


def test_invite_codes_use_the_unambiguous_alphabet():
    codes = {new_invite_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == 8 and set(c) <= set(CODE_ALPHABET) for c in codes)
    assert not set("01ilo") & set(CODE_ALPHABET)
    assert all(is_invite_code(c) for c in codes)


def test_tokens_carry_at_least_128_bits():
    token = new_token()
    assert len(token) == 32  # 24 bytes of base64: 192 bits
    assert is_token(token)
    assert not is_token("../../etc/passwd")


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("A.B.c+x@Gmail.com", "abc@gmail.com"),
        ("abc@googlemail.com", "abc@gmail.com"),
        ("user+tag@outlook.com", "user@outlook.com"),
        ("First.Last@Example.COM", "first.last@example.com"),
        ("anna@bücher.de", "anna@xn--bcher-kva.de"),
        ("  bob@example.com ", "bob@example.com"),
    ],
)
def test_normalize_email(typed, normal):
    assert normalize_email(typed) == normal


@pytest.mark.parametrize(
    "bad", ["", "bob", "bob@", "@example.com", "a b@example.com", "+tag@example.com"]
)
def test_normalize_email_refuses_what_is_not_an_address(bad):
    with pytest.raises(ValueError, match=r"address|mailbox"):
        normalize_email(bad)


def test_money_is_rounded_half_up_once_to_the_minor_unit():
    assert percent_of(Decimal("50.00"), Decimal(10), "CNY") == Decimal("5.00")
    assert percent_of(Decimal("50.00"), Decimal(5), "CNY") == Decimal("2.50")
    assert percent_of(Decimal("33.33"), Decimal(10), "CNY") == Decimal("3.33")
    assert quantize(Decimal("0.125"), "USD") == Decimal("0.13")
    assert quantize(Decimal("99.5"), "JPY") == Decimal("100")
    assert minor_units("KWD") == 3
    assert format_amount(Decimal("500"), "JPY") == "500"
    assert format_amount(Decimal("50")) == "50.00"
    assert format_amount(Decimal("-2.0000")) == "-2.00"


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", ""])
def test_parse_amount_refuses_non_numbers(bad):
    with pytest.raises(ValueError, match="amount"):
        parse_amount(bad)


def test_client_ip_ignores_forwarded_for_from_an_untrusted_peer():
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert client_ip(request) == "203.0.113.9"


@override_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
def test_client_ip_takes_the_rightmost_untrusted_hop_behind_a_trusted_proxy():
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7, 10.0.0.5"
    )
    assert client_ip(request) == "198.51.100.7"


def test_ip_hash_is_keyed_and_never_the_address():
    hashed = ip_hash("198.51.100.7")
    assert hashed and "198" not in hashed and len(hashed) == 32
    assert ip_hash("198.51.100.7") == hashed
    with override_settings(IP_HASH_KEY="another-key"):
        assert ip_hash("198.51.100.7") != hashed
    assert network_hash("198.51.100.7") == network_hash("198.51.100.200")
    assert network_hash("198.51.100.7") != network_hash("198.51.101.7")
