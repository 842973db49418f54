"""Finance in the admin: the report form, the reconciliation, payout batches, and who may
do what (finance, an operator, nobody signed in)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import openpyxl
import pytest
from django.test import Client

from apps.campaigns.models import Campaign
from apps.rewards.models import FinanceLog, PayoutBatch, Reward
from apps.rewards.payouts import payout_batch_create
from tests.rewards.helpers import purchase

from .conftest import release_all

pytestmark = pytest.mark.django_db

REPORT = "/admin/exports/exportjob/report/"
RECONCILIATION = "/admin/exports/exportjob/reconciliation/"
EXPORTS = "/admin/exports/exportjob/"
BATCHES = "/admin/rewards/payoutbatch/"


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def csv_rows(response) -> list[dict[str, str]]:
    raw = body(response)
    assert raw.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


@pytest.fixture
def open_batch(shop, alice, bob, carol) -> PayoutBatch:
    purchase(carol, "o-1", "50.00")
    release_all()
    return payout_batch_create(actor="finance", currency="CNY").batch


# --- The report ---------------------------------------------------------------------------


def test_finance_downloads_a_small_report_at_once(finance_client, ledger):
    page = finance_client.get(REPORT)
    assert page.status_code == 200 and b"Export" in page.content
    response = finance_client.post(REPORT, {"date_field": "created", "format": "csv"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    rows = csv_rows(response)
    assert len(rows) == Reward.objects.count()
    log = FinanceLog.objects.get(action="report_exported")
    assert (log.actor, log.details["rows"], log.details["format"]) == (
        "admin:fiona",
        len(rows),
        "csv",
    )


def test_the_finance_pages_speak_chinese(finance_client, ledger):
    page = finance_client.get(REPORT, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "奖励报表" in page.content.decode()
    page = finance_client.get(RECONCILIATION, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "发放 − 冲销 = 已支付 + 已批准未支付 + 冻结中 + 待审核 − 应退回" in page.content.decode()


def test_the_xlsx_from_the_admin_has_rows_and_totals(finance_client, ledger):
    response = finance_client.post(
        REPORT, {"campaign": "usd", "state": "approved", "date_field": "created", "format": "xlsx"}
    )
    assert response.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(body(response)))
    rows = list(book["Rewards"].iter_rows(values_only=True))[1:]
    assert {(r[1], r[11]) for r in rows} == {("usd", "approved")}
    totals = list(book["Totals"].iter_rows(values_only=True))[1:]
    assert totals == [("USD", "approved", 2, 10)]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"date_from": "2026-03-02", "date_to": "2026-03-01"}, "must not be before from"),
        ({"date_from": "2026-02-30"}, "Enter a valid date"),
        ({"campaign": "nope"}, "Select a valid choice"),
        ({"state": "owed"}, "Select a valid choice"),
        ({"format": "pdf"}, "Select a valid choice"),
    ],
)
def test_bad_report_filters_get_the_form_back_with_the_error(finance_client, ledger, data, error):
    response = finance_client.post(REPORT, {"date_field": "created", "format": "csv", **data})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not FinanceLog.objects.filter(action="report_exported").exists()


# --- Permissions ---------------------------------------------------------------------------


def finance_urls(batch: PayoutBatch) -> list[tuple[str, str]]:
    return [
        ("get", REPORT),
        ("post", REPORT),
        ("get", RECONCILIATION),
        ("get", f"{RECONCILIATION}?format=csv"),
        ("get", f"{BATCHES}add/"),
        ("post", f"{BATCHES}{batch.pk}/pay/"),
        ("post", f"{BATCHES}{batch.pk}/cancel/"),
        ("get", f"{BATCHES}{batch.pk}/lines.csv"),
        ("get", f"{BATCHES}{batch.pk}/payees.csv"),
    ]


def test_an_operator_can_neither_export_nor_pay(operator_client, open_batch):
    for method, url in finance_urls(open_batch):
        data = {"reference": "BANK-1", "currency": "CNY"} if method == "post" else {}
        response = getattr(operator_client, method)(url, data)
        assert response.status_code == 403, (method, url)
    open_batch.refresh_from_db()
    assert open_batch.status == "open"
    assert set(Reward.objects.values_list("state", flat=True)) == {"approved"}
    assert not FinanceLog.objects.exclude(action="batch_created").exists()
    page = operator_client.get(f"{BATCHES}{open_batch.pk}/change/")
    assert page.status_code == 200 and b"Mark paid" not in page.content


def test_nobody_signed_in_is_sent_to_the_login(open_batch):
    client = Client()
    for method, url in [*finance_urls(open_batch), ("get", EXPORTS), ("get", BATCHES)]:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    open_batch.refresh_from_db()
    assert open_batch.status == "open"


def test_finance_can_read_campaigns_but_not_edit_them(finance_client, shop):
    url = f"/admin/campaigns/campaign/{shop.pk}/change/"
    assert finance_client.get(url).status_code == 200
    response = finance_client.post(url, {"name": "Renamed", "slug": "shop"})
    assert response.status_code == 403
    assert Campaign.objects.get(pk=shop.pk).name != "Renamed"
    assert finance_client.get("/admin/campaigns/campaign/add/").status_code == 403


def test_the_finance_group_holds_exactly_its_permissions(fiona):
    perms = fiona.get_all_permissions()
    assert {
        "exports.export_rewards", "rewards.pay_payoutbatch", "rewards.add_payoutbatch",
        "rewards.view_reward", "campaigns.view_campaign",
    } <= perms  # fmt: skip
    assert not perms & {
        "campaigns.change_campaign", "campaigns.add_campaign", "campaigns.delete_campaign",
        "rewards.change_reward", "rewards.delete_payoutbatch",
    }  # fmt: skip


# --- Payout batches --------------------------------------------------------------------------


def test_finance_makes_a_batch_exports_it_and_marks_it_paid_once(
    finance_client, shop, alice, bob, carol
):
    purchase(carol, "o-1", "50.00")
    release_all()
    response = finance_client.post(f"{BATCHES}add/", {"currency": "CNY", "campaign": "shop"})
    batch = PayoutBatch.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{batch.pk}/change/")
    page = finance_client.get(response["Location"])
    assert b"Mark paid" in page.content and b"27.50" in page.content

    payees = csv_rows(finance_client.get(f"{BATCHES}{batch.pk}/payees.csv"))
    assert {r["participant_id"]: r["amount"] for r in payees} == {
        str(carol.pk): "20.00", str(bob.pk): "5.00", str(alice.pk): "2.50",
    }  # fmt: skip
    lines = csv_rows(finance_client.get(f"{BATCHES}{batch.pk}/lines.csv"))
    assert {r["payout_batch"] for r in lines} == {str(batch.pk)} and len(lines) == 3
    listed = finance_client.get(f"/admin/rewards/reward/?payout_batch__id__exact={batch.pk}")
    assert listed.status_code == 200 and listed.context["cl"].result_count == 3

    finance_client.post(f"{BATCHES}{batch.pk}/pay/", {"reference": "BANK-1"})
    batch.refresh_from_db()
    assert (batch.status, batch.reference, batch.paid_by) == ("paid", "BANK-1", "admin:fiona")
    assert set(Reward.objects.values_list("state", flat=True)) == {"paid"}
    again = finance_client.post(f"{BATCHES}{batch.pk}/pay/", {"reference": "BANK-2"}, follow=True)
    assert "already paid" in again.content.decode()
    batch.refresh_from_db()
    assert batch.reference == "BANK-1"
    assert set(Reward.objects.values_list("payout_reference", flat=True)) == {"BANK-1"}
    assert list(FinanceLog.objects.order_by("id").values_list("action", "actor")) == [
        ("batch_created", "admin:fiona"),
        ("batch_exported", "admin:fiona"),
        ("report_exported", "admin:fiona"),
        ("batch_paid", "admin:fiona"),
    ]


def test_marking_paid_without_a_reference_changes_nothing(finance_client, open_batch):
    response = finance_client.post(f"{BATCHES}{open_batch.pk}/pay/", {"reference": ""}, follow=True)
    assert "Give the payment" in response.content.decode()
    open_batch.refresh_from_db()
    assert open_batch.status == "open"


def test_a_batch_with_nothing_to_pay_is_refused_with_the_reason(finance_client, shop, carol):
    purchase(carol, "o-1", "50.00")  # held: nothing approved yet
    assert finance_client.get(f"{BATCHES}add/").status_code == 200
    release_all()
    response = finance_client.post(
        f"{BATCHES}add/", {"currency": "CNY", "approved_to": "2001-01-01"}
    )
    assert response.status_code == 400
    assert "nothing to pay" in response.content.decode()
    assert not PayoutBatch.objects.exists()


def test_ticking_rewards_that_are_not_approved_refuses_the_batch(finance_client, shop, carol):
    purchase(carol, "o-1", "50.00")
    ids = list(Reward.objects.values_list("pk", flat=True))
    response = finance_client.post(
        "/admin/rewards/reward/",
        {"action": "new_payout_batch", "_selected_action": ids},
        follow=True,
    )
    assert "is held, not approved" in response.content.decode()
    assert not PayoutBatch.objects.exists()
    release_all()
    response = finance_client.post(
        "/admin/rewards/reward/", {"action": "new_payout_batch", "_selected_action": ids}
    )
    batch = PayoutBatch.objects.get()
    assert response["Location"].endswith(f"/payoutbatch/{batch.pk}/change/")
    assert batch.total == Decimal("27.50")


def test_operators_are_not_offered_the_payout_action(operator_client, open_batch):
    page = operator_client.get("/admin/rewards/reward/")
    assert page.status_code == 200
    assert b"new_payout_batch" not in page.content


def test_finance_cancels_an_open_batch(finance_client, open_batch):
    finance_client.post(f"{BATCHES}{open_batch.pk}/cancel/")
    open_batch.refresh_from_db()
    assert open_batch.status == "cancelled"
    assert not Reward.objects.filter(payout_batch__isnull=False).exists()


# --- Reconciliation and the log ---------------------------------------------------------------


def test_the_reconciliation_page_and_its_csv(finance_client, ledger):
    page = finance_client.get(RECONCILIATION)
    assert page.status_code == 200
    text = page.content.decode()
    assert "granted − reversed = paid + approved unpaid + held + pending − owed back" in text
    assert "✗" not in text and text.count("✓") == 2 + 2  # two lines, two currency totals
    response = finance_client.get(RECONCILIATION, {"campaign": "shop", "format": "csv"})
    rows = csv_rows(response)
    assert [(r["campaign"], r["currency"]) for r in rows] == [("shop", "CNY")]
    row = rows[0]
    assert Decimal(row["granted"]) - Decimal(row["reversed"]) == Decimal(row["paid"]) + Decimal(
        row["outstanding"]
    )
    log = FinanceLog.objects.get(action="reconciliation_exported")
    assert log.actor == "admin:fiona" and log.details["campaign"] == "shop"


def test_a_bad_reconciliation_period_is_a_400(finance_client, ledger):
    response = finance_client.get(
        RECONCILIATION, {"date_from": "2026-03-02", "date_to": "2026-03-01"}
    )
    assert response.status_code == 400
    assert "must not be before from" in response.content.decode()


def test_finance_reads_the_log(finance_client, open_batch):
    page = finance_client.get("/admin/rewards/financelog/")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    assert b"Payout batch made" in page.content and b"finance" in page.content
