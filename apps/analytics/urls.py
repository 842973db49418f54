from django.urls import path

from . import views

app_name = "analytics"

urlpatterns = [
    path("c/<slug:slug>/leaderboard/", views.public_leaderboard, name="leaderboard"),
]
