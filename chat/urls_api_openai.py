"""`/api/v1/`: the OpenAI-compatible API (chat/openai_api.py, docs/openai-api.md), chat's second
API beside `/api/chat/` (chat/urls_api.py), mounted from hestami_ai/urls.py."""

from django.urls import path, re_path

from chat import openai_api

urlpatterns = [
    path("chat/completions", openai_api.chat_completions, name="openai-chat-completions"),
    path("models", openai_api.models, name="openai-models"),
    path("models/<str:model_id>", openai_api.model, name="openai-model"),
    # Anything else under /api/v1 answers in OpenAI's error shape too.
    re_path(r"^(?P<rest>.*)$", openai_api.not_found),
]
