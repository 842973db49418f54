"""Client addresses: where they come from, and their keyed hash (never stored raw)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's address.

    REMOTE_ADDR, unless the request came through a proxy that the settings trust; then
    the right-most X-Forwarded-For entry that is not itself a trusted proxy (entries to
    its left were written by the client and prove nothing).
    """
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = settings.TRUSTED_PROXIES
    if not trusted or not _in_networks(remote, trusted):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not _in_networks(hop, trusted):
            return hop if _is_ip(hop) else remote
    return remote


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _in_networks(value: str, networks: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


def _keys() -> tuple[bytes, ...]:
    return _derive_keys(
        settings.IP_HASH_KEY, settings.SECRET_KEY, tuple(settings.IP_HASH_KEY_FALLBACKS)
    )


@functools.lru_cache(maxsize=4)
def _derive_keys(key: str, secret_key: str, fallbacks: tuple[str, ...]) -> tuple[bytes, ...]:
    """The keys, derived once per setting (every invite click hashes an address)."""
    primary = key or hashlib.sha256(b"fission-ip-hash:" + secret_key.encode()).hexdigest()
    return tuple(k.encode() for k in [primary, *fallbacks])


def ip_hash(ip: str, *, key_index: int = 0) -> str:
    """A keyed hash of `ip` (HMAC-SHA256, 32 hex characters); empty for no address."""
    if not ip:
        return ""
    return hmac.new(_keys()[key_index], ip.encode(), hashlib.sha256).hexdigest()[:32]


def ip_hashes(ip: str) -> tuple[str, ...]:
    """The hash of `ip` under the current key and every fallback key, current first.

    Rules that compare a new address with ones stored earlier use all of them, so that
    rotating IP_HASH_KEY (the old key moves to IP_HASH_KEY_FALLBACKS) does not make an
    address hashed last week look new today.
    """
    if not ip:
        return ()
    return tuple(ip_hash(ip, key_index=n) for n in range(len(_keys())))


def _network(ip: str) -> str:
    address = ipaddress.ip_address(ip)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def network_hash(ip: str) -> str:
    """The keyed hash of the /24 (IPv4) or /48 (IPv6) network around `ip`."""
    if not _is_ip(ip):
        return ""
    return ip_hash(_network(ip))


def network_hashes(ip: str) -> tuple[str, ...]:
    """`network_hash` under the current key and every fallback key, current first."""
    if not _is_ip(ip):
        return ()
    return ip_hashes(_network(ip))


def in_networks(ip: str, networks: list[str]) -> bool:
    """Whether `ip` is in one of `networks` (CIDR strings); False for a non-address."""
    return _in_networks(ip, networks)
