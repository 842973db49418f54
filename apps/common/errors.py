"""The one application error type.

Services raise it (or a subclass) with a stable machine code, a sentence for people and,
for validation, the offending fields. The API turns it into the contract's error JSON;
the web views turn it into a friendly page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class FissionError(Exception):
    code = "invalid"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: Mapping[str, Sequence[str] | str] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.fields = {
            name: [problems] if isinstance(problems, str) else list(problems)
            for name, problems in (fields or {}).items()
        }


class NotFound(FissionError):
    code = "not_found"
    status = 404


class Conflict(FissionError):
    code = "conflict"
    status = 409


class Unprocessable(FissionError):
    code = "unprocessable"
    status = 422
