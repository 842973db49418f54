"""The benchmark suites. Each takes the run's context and returns its figures."""

from __future__ import annotations

import contextlib
import itertools
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from apps.campaigns.models import Campaign
from apps.common.codes import new_invite_code, new_token
from apps.referrals.models import Participant
from apps.referrals.rollup import tree_rollup
from apps.referrals.selectors import ancestors, descendant_count
from apps.referrals.services import participant_join

from .harness import Figure, rate


@dataclass
class Context:
    """What every suite gets: the generated campaigns, and `stack`, which the run closes
    after the last figure (a suite starts its server there: `ctx.stack.enter_context(...)`)."""

    campaigns: list[Campaign]
    big_subtree: int
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)


def _pk_lookup(ids: list[int]) -> Callable[[], float]:
    cycle = itertools.cycle(ids)
    return lambda: rate(lambda: Participant.objects.get(pk=next(cycle)))


def tree(ctx: Context) -> list[Figure]:
    rng = random.Random(7)
    first = ctx.campaigns[0]
    ids = list(
        Participant.objects.filter(campaign__slug__startswith="load-").values_list("id", flat=True)[
            :200_000
        ]
    )
    sample = rng.sample(ids, 2000)
    deep = list(Participant.objects.filter(campaign=first, depth__gte=150).order_by("?")[:200])
    spread = list(Participant.objects.filter(pk__in=sample))
    viral = Participant.objects.filter(campaign=first, depth=0).order_by("id").first()
    # Production's steady state: beat rolls the tree up every minute, so subtree sizes
    # count at most a minute of joins live (earlier suites and runs joined thousands).
    tree_rollup()
    assert viral is not None
    deep_cycle, spread_cycle = itertools.cycle(deep), itertools.cycle(spread)
    # A campaign that qualifies on a purchase, as most shops' do: a join is the tree's
    # insert and the fraud screening, not also a qualifying event (the events suite
    # measures those).
    scratch, _ = Campaign.objects.update_or_create(
        slug="bench-scratch",
        defaults={"name": "Benchmark scratch", "status": "active", "qualifying_event": "purchase"},
    )
    counter = itertools.count()
    run = secrets.token_hex(4)

    def join() -> None:
        n = next(counter)
        participant_join(
            campaign=scratch, email=f"j{run}-{n}@bench.example", name="Bench", consent=True
        )

    def plain_insert() -> None:
        n = next(counter)
        Participant(
            campaign=scratch,
            email=f"i{run}-{n}@bench.example",
            email_normalized=f"i{run}-{n}@bench.example",
            name="Bench",
            code=new_invite_code(10),
            token=new_token(),
        ).save(force_insert=True)

    return [
        Figure(
            name="tree: ancestors (3 levels), depth ≥ 150",
            workload=f"{len(ids):,}+ participants, chains 200 deep",
            baseline_name="primary-key lookup",
            subject=lambda: rate(lambda: ancestors(next(deep_cycle))),
            baseline=_pk_lookup(sample),
            target=0.4,
        ),
        Figure(
            name="tree: ancestors (3 levels), random nodes",
            workload="random participants of all campaigns",
            baseline_name="primary-key lookup",
            subject=lambda: rate(lambda: ancestors(next(spread_cycle))),
            baseline=_pk_lookup(sample),
            target=0.4,
        ),
        Figure(
            name="tree: subtree size of the viral seed",
            workload=f"one referrer with {ctx.big_subtree:,} descendants",
            baseline_name="primary-key lookup",
            subject=lambda: rate(lambda: descendant_count(viral), seconds=3.0, warmup=3),
            baseline=_pk_lookup(sample),
            target=0.3,
        ),
        Figure(
            name="tree: subtree size, random nodes",
            workload="random participants of all campaigns",
            baseline_name="primary-key lookup",
            subject=lambda: rate(lambda: descendant_count(next(spread_cycle))),
            baseline=_pk_lookup(sample),
            target=0.3,
        ),
        Figure(
            name="tree: join (insert)",
            workload="participant_join into a live campaign qualifying on purchase",
            baseline_name="plain INSERT of a participant row",
            subject=lambda: rate(join),
            baseline=lambda: rate(plain_insert),
            target=0.5,
        ),
    ]


# Suites in modules of their own (they take this module's Context, hence at the end).
from . import reports  # noqa: E402
from .ingest import ingest  # noqa: E402
from .public import qr, redirect  # noqa: E402

SUITES: dict[str, Callable[[Context], list[Figure]]] = {
    "tree": tree,
    "kfactor": reports.kfactor,
    "export": reports.export,
    "redirect": redirect,
    "qr": qr,
    "ingest": ingest,
}
