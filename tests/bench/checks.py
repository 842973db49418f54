"""Checks the load runs make of what they wrote."""

from __future__ import annotations


def duplicate_rewards(campaign_id: int) -> int:
    """Rewards granted more than once for the same cause in the campaign (must be 0)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT (SELECT count(*) - count(DISTINCT (purchase_id, level)) FROM rewards_reward
                    WHERE campaign_id = %s AND source = 'commission' AND adjusts_id IS NULL)
                 + (SELECT count(*) - count(DISTINCT participant_id) FROM rewards_reward
                    WHERE campaign_id = %s AND source = 'referee' AND adjusts_id IS NULL)
                 + (SELECT count(*) - count(DISTINCT (participant_id, tier_threshold))
                    FROM rewards_reward
                    WHERE campaign_id = %s AND source = 'tier' AND adjusts_id IS NULL)
            """,
            [campaign_id] * 3,
        )
        return int(cursor.fetchone()[0])
