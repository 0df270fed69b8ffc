from django.urls import path

from conversations import views

urlpatterns = [
    path("", views.home, name="chat-home"),
    path("c/<uuid:conversation_id>/", views.conversation_detail, name="conversation-detail"),
    path("c/<uuid:conversation_id>/rename/", views.conversation_rename_view, name="conversation-rename"),
    path("c/<uuid:conversation_id>/delete/", views.conversation_delete_view, name="conversation-delete"),
]
