from __future__ import annotations

from celery import shared_task

from .rollup import tree_rollup


@shared_task(ignore_result=True)
def roll_up_tree() -> None:
    """Periodic: fold new participants into their ancestors' subtree sizes."""
    tree_rollup()
