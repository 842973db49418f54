from __future__ import annotations

from celery import shared_task

from . import clickbuffer
from .rollup import tree_rollup


@shared_task(ignore_result=True)
def roll_up_tree() -> None:
    """Periodic: fold new participants into their ancestors' subtree sizes."""
    tree_rollup()


@shared_task(ignore_result=True)
def flush_click_buffer() -> None:
    """Periodic (every CLICK_FLUSH_EVERY_SECONDS while CLICK_BUFFER_URL is set): write the
    buffered invite clicks to the click log. Two at once, or one after a crash, write
    each click once (apps.referrals.clickbuffer)."""
    if clickbuffer.enabled():
        clickbuffer.flush()
