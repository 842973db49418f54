from django.urls import path

from . import views

app_name = "notifications"

urlpatterns = [
    path("verify/<str:token>/", views.verify, name="verify"),
    path("p/<str:token>/verify/resend", views.resend, name="resend"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
