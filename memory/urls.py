from django.urls import path

from memory import views

urlpatterns = [
    path("", views.memory_page, name="memory"),
    path("toggle/", views.memory_toggle, name="memory-toggle"),
    path("facts/<int:fact_id>/edit/", views.fact_edit, name="memory-fact-edit"),
    path("facts/<int:fact_id>/delete/", views.fact_remove, name="memory-fact-delete"),
    path("facts/delete-all/", views.facts_remove_all, name="memory-delete-all"),
]
