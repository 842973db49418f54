"""Standard Webhooks signatures (https://www.standardwebhooks.com/), both ways.

The `standardwebhooks` library does the cryptography: HMAC-SHA256 over
`<webhook-id>.<webhook-timestamp>.<body>`, base64, constant-time comparison and a
5-minute tolerance on the timestamp. Here: secrets, rotation (two secrets are valid while
one replaces the other) and turning its errors into the API's.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from apps.common.errors import FissionError

SECRET_PREFIX = "whsec_"  # noqa: S105 (the format's prefix, not a secret)
SECRET_BYTES = 32
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class SignatureError(FissionError):
    code = "invalid_signature"
    status = 401


def new_secret() -> str:
    """A signing secret in the Standard Webhooks form: whsec_ and 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secrets_: Sequence[str], *, msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The webhook-signature header: one `v1,<sig>` per secret, space-separated, so a
    receiver that knows either the new or the old secret accepts it during a rotation."""
    text = body.decode()
    return " ".join(
        Webhook(s).sign(msg_id=msg_id, timestamp=timestamp, data=text) for s in secrets_ if s
    )


def verify(secrets_: Sequence[str], *, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise SignatureError unless `headers` carry a valid signature of `body` made with
    one of `secrets_` and a timestamp within 5 minutes of now."""
    present = {name: headers.get(name, "") for name in HEADERS}
    missing = [name for name, value in present.items() if not value]
    if missing:
        raise SignatureError(
            "This API key signs its events: the request needs the headers "
            + ", ".join(missing)
            + ".",
            fields=dict.fromkeys(missing, "required"),
        )
    last = "The signature does not match."
    for secret in secrets_:
        if not secret:
            continue
        try:
            Webhook(secret).verify(body, present, json_parse=False)
            return
        except WebhookVerificationError as exc:
            last = _message(str(exc))
            if "timestamp" in last:
                break  # the same for every secret
        except (ValueError, UnicodeDecodeError):
            # A malformed signature header or body: base64, "v1,<sig>", UTF-8.
            last = "The webhook-signature header or the body is malformed."
    raise SignatureError(last)


def _message(error: str) -> str:
    if "too old" in error or "too new" in error or "Invalid Signature Headers" in error:
        return "The webhook-timestamp is malformed or not within 5 minutes of the server's clock."
    return "The signature does not match."
