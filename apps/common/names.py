"""What other people may see of a participant's name."""

from __future__ import annotations

import unicodedata


def public_name(name: str) -> str:
    """The first word of `name`; for a Chinese, Japanese or Korean name written without
    spaces (the family name first), its first character and a mask: "王**".

    Invite pages can be posted anywhere, so nobody's full name is shown to strangers.
    """
    name = " ".join(name.split())
    if not name:
        return ""
    first = name.split(" ", 1)[0]
    if " " not in name and len(first) > 1 and unicodedata.east_asian_width(first[0]) == "W":
        return first[0] + "*" * min(len(first) - 1, 2)
    return first


def leaderboard_name(name: str) -> str:
    """A first name and the initial of the last: "Alice W."; names in Chinese, Japanese
    or Korean characters as `public_name` masks them ("王**")."""
    words = " ".join(name.split()).split(" ")
    shown = public_name(name)
    if len(words) > 1 and shown == words[0] and words[-1][:1].isalpha():
        return f"{shown} {words[-1][0].upper()}."
    return shown
