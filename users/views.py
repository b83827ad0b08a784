"""Web pages: sign up, log in, account. Password change and reset are Django's own views."""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from core.client_ip import client_ip
from core.errors import ApplicationError
from users import lifecycle, services
from users.forms import AccountDeleteForm, EmailAuthenticationForm, SignupForm
from users.models import User
from users.selectors import chat_account_status
from users.throttles import (
    LoginAccountThrottle,
    LoginIPThrottle,
    PasswordCheckThrottle,
    RegisterAccountThrottle,
    RegisterIPThrottle,
    throttle_wait,
)


def _throttled(request: HttpRequest, template: str, form: Any, wait: float) -> HttpResponse:
    form.add_error(None, f"Too many attempts. Try again in {math.ceil(wait)} seconds.")
    response = render(request, template, {"form": form}, status=429)
    response["Retry-After"] = str(math.ceil(wait))
    return response


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("account")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wait = throttle_wait([RegisterIPThrottle(), RegisterAccountThrottle()], request)
        if wait is not None:
            return _throttled(request, "users/signup.html", form, wait)
        try:
            user = services.user_create(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                name=form.cleaned_data["name"],
                client_ip=client_ip(request),
            )
        except ApplicationError as exc:
            for field, errors in (exc.fields or {}).items():
                target = "password1" if field == "password" else field
                for error in errors:
                    form.add_error(target if target in form.fields else None, error)
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            login(request, user, backend="users.backends.EmailBackend")
            messages.success(request, "Welcome! Your chat account is being set up.")
            return redirect("account")
    return render(request, "users/signup.html", {"form": form})


class LoginView(auth_views.LoginView):
    form_class = EmailAuthenticationForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wait = throttle_wait([LoginIPThrottle(), LoginAccountThrottle()], request)
        if wait is not None:
            return _throttled(request, self.template_name, self.get_form(), wait)
        return super().post(request, *args, **kwargs)


@login_required
def account(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    context = {"account": user, "chat_account": chat_account_status(user)}
    return render(request, "users/account.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def account_delete(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User)
    form = AccountDeleteForm(request.POST or None, user=user)
    if request.method == "POST":
        wait = throttle_wait([PasswordCheckThrottle()], request)
        if wait is not None:
            return _throttled(request, "users/account_delete.html", form, wait)
        if form.is_valid():
            lifecycle.account_delete(user=user)
            logout(request)
            messages.success(request, lifecycle.DELETION_STARTED_MESSAGE)
            return redirect("login")
    return render(request, "users/account_delete.html", {"form": form})


def home(request: HttpRequest) -> HttpResponse:
    return redirect("account" if request.user.is_authenticated else "login")
