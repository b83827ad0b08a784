"""Routes of LibreChat's Code API, mounted at /api/code/v1/ (the default execution profile) and
/api/code/stateful/v1/ (the stateful one; code_interpreter/profiles.py), contract C8."""

from django.urls import path

from code_interpreter import views

urlpatterns = [
    path("health", views.health, name="code-health"),
    path("exec", views.exec_code, name="code-exec"),
    path("exec/programmatic", views.exec_programmatic, name="code-exec-programmatic"),
    path("upload", views.upload, name="code-upload"),
    path("upload/batch", views.upload_batch, name="code-upload-batch"),
    path("files/<str:session_id>", views.session_files, name="code-session-files"),
    path("files/<str:session_id>/<str:file_id>", views.delete_file, name="code-delete-file"),
    path(
        "sessions/<str:session_id>/objects/<str:file_id>",
        views.session_object,
        name="code-session-object",
    ),
    path("download/<str:session_id>/<str:file_id>", views.download, name="code-download"),
]
