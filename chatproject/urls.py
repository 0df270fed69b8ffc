from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chatproject import accounts, health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", health.healthz, name="healthz"),
    path("memory/", include("memory.urls")),
    path("", include("moderation.urls")),
    path("", include("conversations.urls")),
]
