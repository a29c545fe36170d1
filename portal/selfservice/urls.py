from django.urls import path

from portal.selfservice import views

app_name = "selfservice"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("password/", views.password, name="password"),
    path("ssh-key/", views.ssh_key, name="ssh_key"),
    path("request/<int:template_pk>/", views.vm_request, name="vm_request"),
    path("vm/<int:pk>/card/", views.vm_card, name="vm_card"),
    path("vm/<int:pk>/<slug:action>/", views.vm_action, name="vm_action"),
]
