from django.urls import path

from chat import ui

urlpatterns = [
    path("", ui.chat_page, name="chat"),
    path("c/<str:conversation_id>/", ui.chat_page, name="chat-conversation"),
]
