"""Money: `Decimal` amounts with an ISO 4217 currency, quantised once, here.

Every amount that is granted is rounded to its currency's minor unit with
ROUND_HALF_UP exactly once, at grant; sums of rounded amounts are never rounded again.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# Currencies whose minor unit is not the cent. Everything else has 2 decimals.
_MINOR_UNITS = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    # Loyalty points are whole numbers.
    "PTS": 0,
}
AMOUNT_MAX_DIGITS = 14
AMOUNT_DECIMAL_PLACES = 4


def minor_units_table() -> dict[str, int]:
    """The currencies whose minor unit is not the cent, with their decimals (for SQL that
    formats amounts the way `format_amount` does)."""
    return dict(_MINOR_UNITS)


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency.upper(), 2)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round `amount` to the minor unit of `currency`, half up."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUND_HALF_UP)


def percent_of(amount: Decimal, percent: Decimal, currency: str) -> Decimal:
    """`percent` % of `amount`, rounded once to the currency's minor unit."""
    return quantize(amount * percent / Decimal(100), currency)


def format_amount(amount: Decimal, currency: str | None = None) -> str:
    """A plain decimal string: in the currency's minor unit when one is given ("50.00",
    "500" for JPY), else with at least two decimals and no trailing zeros beyond."""
    if currency is not None:
        return f"{quantize(amount, currency):f}"
    cents = amount.quantize(Decimal("0.01"))
    return f"{cents:f}" if cents == amount else f"{amount.normalize():f}"


def parse_amount(value: object) -> Decimal:
    """A finite Decimal from a string or number; ValueError for anything else."""
    if isinstance(value, float):
        # Floats carry binary noise; amounts arrive as decimal strings by contract.
        value = repr(value)
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{value!r} is not a decimal amount") from exc
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite amount")
    return amount


def is_currency(value: str) -> bool:
    return len(value) == 3 and value.isascii() and value.isalpha() and value.isupper()
