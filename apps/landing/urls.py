from django.urls import path

from . import health, images, personal, views

app_name = "landing"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("r/<str:code>", views.invite, name="invite"),
    # The same link with a slash added by hand or by a chat app.
    path("r/<str:code>/", views.invite),
    path("c/<slug:slug>/", views.campaign_page, name="campaign"),
    path("c/<slug:slug>/join", views.campaign_join, name="join"),
    path("p/<str:token>/", personal.personal_page, name="personal"),
    path("p/<str:token>/qr.svg", images.qr_code_svg, name="qr-svg"),
    path("p/<str:token>/qr.png", images.qr_code_png, name="qr-png"),
    path("p/<str:token>/poster.png", images.poster, name="poster"),
    path("p/<str:token>/consent/withdraw", personal.withdraw_consent, name="withdraw-consent"),
    path("p/<str:token>/my-data", personal.request_data_export, name="data-export"),
]
