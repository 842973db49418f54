"""The admin speaks Simplified Chinese to a Chinese browser in every app, not only in the
apps operators open most: each app keeps its own catalogue (`make messages`)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

PAGES = [
    ("/admin/campaigns/campaign/add/", ["怎样算一次推荐", "奖励与上限", "被邀请的好友要做什么"]),
    ("/admin/rewards/rewardreview/", ["审核队列"]),
    ("/admin/rewards/reward/", ["冻结中", "被推荐人奖励", "已达活动预算上限"]),
    ("/admin/referrals/participant/", ["直接推荐", "已标记待审核", "已封禁"]),
    ("/admin/referrals/click/", ["机器人或链接预览"]),
    ("/admin/api/webhookendpoint/add/", ["事件 POST 到的地址（https）。"]),
    ("/admin/api/webhookdelivery/", ["已送达"]),
]


@pytest.fixture
def operator() -> Client:
    user = get_user_model().objects.create_superuser("li", "li@example.com", "pw-li-12345")
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(user)
    return client


@pytest.mark.parametrize(("path", "words"), PAGES)
def test_each_apps_admin_pages_are_in_chinese(operator, bob, path, words):
    page = operator.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    for word in words:
        assert word in html, f"{word!r} not on {path}"
