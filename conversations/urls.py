from django.urls import path, re_path

from conversations import api, api_keys, views, views_attachments

urlpatterns = [
    path("", views.home, name="chat-home"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation-detail"),
    path("c/<uuid:conversation_id>/rename/", views.conversation_rename_view, name="conversation-rename"),
    path("c/<uuid:conversation_id>/delete/", views.conversation_delete_view, name="conversation-delete"),
    path("c/<uuid:conversation_id>/pin/", views.conversation_pin_view, name="conversation-pin"),
    path("c/<uuid:conversation_id>/archive/", views.conversation_archive_view, name="conversation-archive"),
    path("c/temporary/", views.temporary_chat_view, name="temporary-chat"),
    path("archived/", views.archived_page, name="archived-conversations"),
    path("c/<uuid:conversation_id>/export.<str:fmt>", views.conversation_export_view, name="conversation-export"),
    path("c/<uuid:conversation_id>/share/", views.conversation_share_view, name="conversation-share"),
    path("settings/data/", views.data_page, name="data"),
    path("settings/data/export.<str:fmt>", views.conversations_export_view, name="data-export"),
    path("settings/data/import/", views.data_import_view, name="data-import"),
    path("settings/shares/", views.shares_page, name="shares"),
    path("settings/shares/<int:share_id>/revoke/", views.share_revoke_view, name="share-revoke"),
    path("search/", views.search_page, name="search"),
    path("search.json", views.search_json, name="search-json"),
    path("usage/", views.usage_page, name="usage"),
    path("attachments/", views_attachments.attachment_upload, name="attachment-upload"),
    path("attachments/<uuid:attachment_id>/", views_attachments.attachment_file, name="attachment-file"),
    path("settings/keys/", api_keys.api_keys_page, name="api-keys"),
    path("settings/keys/new/", api_keys.api_key_create_view, name="api-key-create"),
    path("settings/keys/<int:key_id>/revoke/", api_keys.api_key_revoke_view, name="api-key-revoke"),
    # The OpenAI-compatible API (docs/api.md).
    path("v1/chat/completions", api.chat_completions, name="api-chat-completions"),
    path("v1/models", api.models_list, name="api-models"),
    path("v1/models/<path:model>", api.model_detail, name="api-model"),
    re_path(r"^v1/(?P<path>.*)$", api.not_found),
]
