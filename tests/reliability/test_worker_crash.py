"""A Celery worker killed with SIGKILL in the middle of 1,000 webhook deliveries, then
restarted: every delivery reaches the host, none is recorded twice.

Deliveries are the product's background jobs: a row written with the change it reports
(the outbox), a message queued when that transaction commits, a worker that claims the
row (a conditional UPDATE) before it sends. A worker killed mid-send leaves its claimed
rows with a lease; when the lease ends, the periodic sweep (beat) queues them again. The
messages the dead worker held unacknowledged (acks_late) stay in Redis until its
visibility timeout (an hour): recovery does not wait for them, and when they come back
the claim makes them no-ops.
"""

from __future__ import annotations

import time

import pytest

from apps.api import webhooks
from apps.api.models import WebhookAttempt, WebhookDelivery
from tests.factories import CampaignFactory

from .conftest import needs_postgres, needs_redis_server, record
from .procs import django_env, publish_events, wait_for

pytestmark = [needs_postgres, needs_redis_server]

JOBS = 1000
LEASE = 5


def worker_env(database_url: str, broker_url: str) -> dict[str, str]:
    return django_env(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        WEBHOOK_TIMEOUT_SECONDS=2,
        # Short, so that the test sees the sweep take back what the dead worker held; but
        # longer than any try takes even on a busy machine, or a live worker's try would
        # be taken from it too.
        WEBHOOK_LEASE_SECONDS=LEASE,
        WEBHOOK_SWEEP_EVERY_SECONDS=1,
        WEBHOOK_SWEEP_GRACE_SECONDS=10,
    )


def test_a_worker_killed_mid_batch_loses_no_delivery_and_records_none_twice(
    processes, private_redis, receiver, test_database_url
):
    campaign = CampaignFactory(slug="crash")
    webhooks.webhook_endpoint_create(url=receiver.url)
    env = worker_env(test_database_url, private_redis.url(0))
    assert publish_events(env, campaign_id=campaign.pk, count=JOBS) == JOBS
    assert private_redis.client().llen("celery") == JOBS

    worker = processes.worker(env, beat=True)
    wait_for(lambda: receiver.distinct() >= JOBS * 0.3, timeout=60, what="30 % delivered")
    worker.kill()  # the main process and its pool, without warning
    killed_at = time.monotonic()
    at_kill = receiver.distinct()
    assert at_kill < JOBS, "the worker finished before it could be killed"

    processes.worker(env, beat=True)  # as systemd or Kubernetes would restart it
    restarted_in = time.monotonic() - killed_at

    def all_delivered() -> bool:
        done = WebhookDelivery.objects.filter(status="delivered").count() == JOBS
        return done and receiver.distinct() == JOBS

    wait_for(all_delivered, timeout=60, what="every delivery after the restart")
    recovered_in = time.monotonic() - killed_at

    counts = receiver.counts()
    lost = JOBS - len(counts)
    # Recorded twice: a delivery with more than one successful try in the database.
    successes = WebhookAttempt.objects.filter(status_code__gte=200, status_code__lt=300)
    duplicated = successes.count() - successes.values("delivery").distinct().count()
    # Sent again: a request the dead worker made but never recorded, sent again with the
    # same webhook-id (the host drops it: the README tells hosts to).
    resent = sum(n - 1 for n in counts.values())
    figures = {
        "jobs": JOBS,
        "delivered_before_kill": at_kill,
        "lost": lost,
        "duplicated": duplicated,
        "resent_same_webhook_id": resent,
        "worker_restart_seconds": round(restarted_in, 2),
        "recovery_seconds": round(recovered_in, 2),
        "lease_seconds": LEASE,
        "sweep_every_seconds": 1,
    }
    record("worker_crash", figures)
    assert lost == 0 and duplicated == 0
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    # Each delivery has one successful try; a resent one shows a try that never finished.
    assert resent <= 4, "more re-sends than the dead worker had deliveries in hand"


@pytest.fixture(autouse=True)
def _no_leftover_deliveries(transactional_db):
    yield
    WebhookDelivery.objects.all().delete()
