from django.urls import path

from control_plane.config.api import views

urlpatterns = [
    path("config/export/", views.ConfigExportView.as_view(), name="config-export"),
    path("config/import/", views.ConfigImportView.as_view(), name="config-import"),
    path("config/import-litellm/", views.LiteLLMImportView.as_view(), name="config-litellm"),
]
