from django.urls import path

from moderation import views

urlpatterns = [
    path("c/<uuid:conversation_id>/m/<int:message_id>/report/", views.report_reply, name="report-reply"),
]
