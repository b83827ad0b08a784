from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import make_user
from users.models import ProvisioningState, User
from users.services import librechat_password_decrypt

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client) -> Client:
    admin = User.objects.create_superuser(email="admin@example.com", password="x", name="Admin")
    client.force_login(admin)
    return client


def test_admin_pages_render_and_never_contain_the_secret(admin_client: Client) -> None:
    user = make_user(
        email="person@example.com",
        provisioning_state=ProvisioningState.CONFLICT,
        provisioning_error="E-mail exists in LibreChat",
    )
    pages = [
        admin_client.get("/admin/users/user/"),
        admin_client.get("/admin/users/user/?provisioning_state__exact=conflict"),
        admin_client.get("/admin/users/user/?q=person"),
        admin_client.get(f"/admin/users/user/{user.pk}/change/"),
        admin_client.get("/admin/users/user/add/"),
    ]
    assert [p.status_code for p in pages] == [200] * 5
    assert b"person@example.com" in pages[1].content
    assert b"E-mail exists in LibreChat" in pages[3].content
    for page in pages:
        assert librechat_password_decrypt(user).encode() not in page.content
        assert user.librechat_password_encrypted.encode() not in page.content
        assert b"librechat_password_encrypted" not in page.content


def test_admin_created_user_gets_a_librechat_password(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/users/user/add/",
        {
            "email": "Staff@Example.com",
            "name": "Staff",
            "password1": "a-Strong-passw0rd!",
            "password2": "a-Strong-passw0rd!",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content
    user = User.objects.get(email="staff@example.com")
    assert len(librechat_password_decrypt(user)) == 40
