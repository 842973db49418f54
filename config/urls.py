from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

admin.site.site_header = "Fission"
admin.site.site_title = "Fission"
admin.site.index_title = "Campaigns, referrals and rewards"

# The public pages first: the invite redirect and the QR codes are the hottest paths, and
# Django tries each pattern in order. None of them starts with admin/ or api/.
urlpatterns = [
    path("", include("apps.landing.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("apps.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("apps.analytics.urls")),
    path("", include("apps.notifications.urls")),
]

# Friendly pages for people (JSON under /api/), never a stack trace.
handler400 = "apps.landing.errors.bad_request"
handler403 = "apps.landing.errors.permission_denied"
handler404 = "apps.landing.errors.page_not_found"
handler500 = "apps.landing.errors.server_error"
