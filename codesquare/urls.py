from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from portal import views

urlpatterns = [
    # The staff console is the portal's only page so far; the soldier pages will live at "/".
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
]
