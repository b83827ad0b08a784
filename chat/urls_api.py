from django.urls import path

from chat import views

urlpatterns = [
    path("<path:path>", views.proxy, name="chat-proxy"),
]
