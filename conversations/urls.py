from django.urls import path, re_path

from conversations import api, api_keys, views

urlpatterns = [
    path("", views.home, name="chat-home"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation-detail"),
    path("c/<uuid:conversation_id>/rename/", views.conversation_rename_view, name="conversation-rename"),
    path("c/<uuid:conversation_id>/delete/", views.conversation_delete_view, name="conversation-delete"),
    path("usage/", views.usage_page, name="usage"),
    path("settings/keys/", api_keys.api_keys_page, name="api-keys"),
    path("settings/keys/new/", api_keys.api_key_create_view, name="api-key-create"),
    path("settings/keys/<int:key_id>/revoke/", api_keys.api_key_revoke_view, name="api-key-revoke"),
    # The OpenAI-compatible API (docs/api.md).
    path("v1/chat/completions", api.chat_completions, name="api-chat-completions"),
    path("v1/models", api.models_list, name="api-models"),
    path("v1/models/<path:model>", api.model_detail, name="api-model"),
    re_path(r"^v1/(?P<path>.*)$", api.not_found),
]
