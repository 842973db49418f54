from django.urls import path

from apps.analytics.api import CampaignStatsView
from apps.rewards import api as rewards_api

from . import views

app_name = "api"

urlpatterns = [
    path("campaigns/", views.CampaignListView.as_view(), name="campaigns"),
    path("campaigns/<slug:slug>/", views.CampaignDetailView.as_view(), name="campaign"),
    path(
        "campaigns/<slug:slug>/participants/",
        views.ParticipantRegisterView.as_view(),
        name="participants",
    ),
    path("campaigns/<slug:slug>/stats/", CampaignStatsView.as_view(), name="campaign-stats"),
    path("participants/<int:pk>/", views.ParticipantDetailView.as_view(), name="participant"),
    path("events/", rewards_api.EventView.as_view(), name="events"),
    path("rewards/", rewards_api.RewardListView.as_view(), name="rewards"),
]
