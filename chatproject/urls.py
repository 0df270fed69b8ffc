from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from chatproject import accounts, health
from conversations import views as conversation_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/account/", accounts.account_page, name="account"),
    path("settings/account/export/", accounts.account_export, name="account-export"),
    path("settings/account/delete/", accounts.account_delete_view, name="account-delete"),
    path("healthz", health.healthz, name="healthz"),
    # Share links (docs/data.md): read-only snapshots that open without signing in.
    path("s/<str:token>/", conversation_views.shared_conversation_view, name="shared"),
    path("s/<str:token>/continue/", conversation_views.share_continue_view, name="shared-continue"),
    path("memory/", include("memory.urls")),
    path("", include("moderation.urls")),
    path("", include("conversations.urls")),
]
