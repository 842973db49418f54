"""Conversions (the host's events) and rewards (what is owed), with their history.

Rewards are a ledger. A *grant* is the first entry of a cause (a tier reached, a referee
qualifying, a commission level of a purchase) and exists at most once per cause, by
constraint. Later changes to what the cause is worth (a refund, a tier lost and regained)
are *adjustments*: new signed entries that point at their grant, one per grant and causing
event, by constraint. Amounts are never edited; a paid entry is never changed at all.

conversions.py holds the events, rewards.py the ledger's entries and their history,
finance.py the payout batches and the finance log.
"""

from .conversions import (
    Conversion,
    ConversionStatus,
    ConversionType,
    IdempotencyKey,
)
from .finance import (
    FinanceAction,
    FinanceLog,
    PayoutBatch,
    PayoutStatus,
)
from .rewards import (
    LIVE_STATES,
    UNPAID_STATES,
    Reward,
    RewardReason,
    RewardReview,
    RewardSource,
    RewardState,
    RewardTransition,
)

__all__ = [
    "LIVE_STATES",
    "UNPAID_STATES",
    "Conversion",
    "ConversionStatus",
    "ConversionType",
    "FinanceAction",
    "FinanceLog",
    "IdempotencyKey",
    "PayoutBatch",
    "PayoutStatus",
    "Reward",
    "RewardReason",
    "RewardReview",
    "RewardSource",
    "RewardState",
    "RewardTransition",
]
