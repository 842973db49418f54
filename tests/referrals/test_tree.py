from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.referrals.models import Participant
from apps.referrals.rollup import tree_rollup
from apps.referrals.selectors import ancestors, descendant_count, descendants
from tests.factories import CampaignFactory, ParticipantFactory, join

pytestmark = pytest.mark.django_db


def test_depth_and_path_come_from_the_referrer(alice, bob, carol):
    assert (alice.depth, bob.depth, carol.depth) == (0, 1, 2)
    assert alice.path == ""
    assert bob.path == str(alice.pk)
    assert carol.path == f"{alice.pk}/{bob.pk}"
    assert carol.ancestor_ids == [bob.pk, alice.pk]


def test_ancestors_nearest_first(alice, bob, carol, campaign):
    dave = join(campaign, "dave", referrer=carol)
    erin = join(campaign, "erin", referrer=dave)
    assert ancestors(erin) == [dave, carol, bob]
    assert ancestors(erin, levels=1) == [dave]
    assert ancestors(alice) == []


def test_a_chain_a_thousand_deep(campaign):
    """Depth, ancestors and subtree size stay right, and each is a single query, at depth 1,000."""
    node = join(campaign, "root")
    chain = [node]
    for n in range(1, 1001):
        node = join(campaign, f"n{n}", referrer=node)
        chain.append(node)
    deepest = chain[-1]
    assert deepest.depth == 1000
    with CaptureQueriesContext(connection) as queries:
        assert ancestors(deepest) == [chain[-2], chain[-3], chain[-4]]
    assert len(queries) == 1
    for rolled_up in (False, True):
        if rolled_up:
            tree_rollup()
        for node, expected in ((chain[0], 1000), (chain[500], 500), (deepest, 0)):
            with CaptureQueriesContext(connection) as queries:
                assert descendant_count(node) == expected
            # the subtree query, and on PostgreSQL the one-row read of the roll-up mark
            assert len(queries) <= 2


def test_subtree_counts_every_branch_and_nothing_of_other_campaigns(alice, bob, carol, campaign):
    dave = join(campaign, "dave", referrer=alice)
    join(campaign, "erin", referrer=dave)
    other = CampaignFactory()
    join(other, "alice")  # the same person in another campaign is another node
    assert descendant_count(alice) == 4
    assert descendant_count(bob) == 1
    assert set(descendants(dave).values_list("name", flat=True)) == {"Erin"}


def test_a_referrer_cannot_be_the_node_itself_or_leave_depth_inconsistent(alice, campaign):
    with pytest.raises(IntegrityError), transaction.atomic():
        ParticipantFactory(campaign=campaign, depth=1)  # a root at depth 1
    with pytest.raises(IntegrityError), transaction.atomic():
        ParticipantFactory(campaign=campaign, referrer=alice, depth=0)


def test_gin_index_serves_subtree_queries_on_postgresql(alice):
    if connection.vendor != "postgresql":
        pytest.skip("the GIN index exists on PostgreSQL only")
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'participant_path_gin'")
        (definition,) = cursor.fetchone()
    assert "gin" in definition and "string_to_array" in definition
    sql, params = descendants(alice).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET enable_seqscan = on")
    assert "participant_path_gin" in plan


def test_participants_are_not_deletable_in_admin(admin_client, alice):
    response = admin_client.get(f"/admin/referrals/participant/{alice.pk}/delete/")
    assert response.status_code == 403
    assert Participant.objects.filter(pk=alice.pk).exists()
