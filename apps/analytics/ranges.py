"""Local days and date ranges: reports count by day in the site's time zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from apps.common.errors import FissionError

# Dates a report range may name: wide enough for any campaign's history, narrow enough
# that midnight in any time zone is a valid aware datetime.
EARLIEST, LATEST = date(1970, 1, 1), date(2999, 12, 31)


def report_range(raw_from: str | None, raw_to: str | None) -> tuple[date | None, date | None]:
    """Parse and check `from` and `to` (YYYY-MM-DD, local days, both included; either may
    be empty). Raises FissionError naming the bad fields: the API's 400, the CLI's error."""
    problems: dict[str, str] = {}
    parsed: dict[str, date | None] = {}
    for name, raw in (("from", raw_from), ("to", raw_to)):
        parsed[name] = None
        if raw is None or raw == "":
            continue
        try:
            value = date.fromisoformat(raw)
        except ValueError:
            problems[name] = "must be a date as YYYY-MM-DD"
            continue
        if len(raw) != 10:  # fromisoformat also takes 20250301; the contract says YYYY-MM-DD
            problems[name] = "must be a date as YYYY-MM-DD"
        elif not EARLIEST <= value <= LATEST:
            problems[name] = f"must be between {EARLIEST} and {LATEST}"
        else:
            parsed[name] = value
    date_from, date_to = parsed["from"], parsed["to"]
    if not problems and date_from and date_to and date_to < date_from:
        problems["to"] = "must not be before from"
    if problems:
        raise FissionError(
            "The date range is not valid: " + "; ".join(f"{k} {v}" for k, v in problems.items()),
            code="invalid_range",
            fields=problems,
        )
    return date_from, date_to


def site_tz() -> tzinfo:
    return timezone.get_default_timezone()


def day_start(day: date) -> datetime:
    """Midnight starting `day` in the site's time zone (cohorts and ranges are by local day)."""
    return datetime.combine(day, time.min, tzinfo=site_tz())


def in_range(
    queryset: QuerySet[Any], name: str, date_from: date | None, date_to: date | None
) -> QuerySet[Any]:
    """Rows whose `name` falls on a local day from `date_from` to `date_to`, both included."""
    if date_from is not None:
        queryset = queryset.filter(**{f"{name}__gte": day_start(date_from)})
    if date_to is not None:
        queryset = queryset.filter(**{f"{name}__lt": day_start(date_to + timedelta(days=1))})
    return queryset
