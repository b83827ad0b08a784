"""The doctor's ``remote_agents`` check: may LibreChat's USER role use agents over the API?

``/api/v1`` (docs/openai-api.md) needs an agent API key per user, which LibreChat creates only
for a role with ``REMOTE_AGENTS`` ``USE`` (api/server/routes/apiKeys.js); LibreChat's default
USER role lacks it (packages/data-provider/src/roles.ts). The doctor reads the role as our
operator admin (``GET /api/roles/USER``, during the admin's log-in in users/doctor.py, so it
costs no log-in of its own) and says how to grant it. Registered by users (order 45: right after
the operator admin's check).
"""

from __future__ import annotations

from typing import Any

from core.doctor import Doctor, Finding, Status, skipped
from librechat.doctor import prober
from users.doctor import USER_ROLE, RoleRead

CHECK = "remote_agents"
TITLE = "Users may use agents over the API (REMOTE_AGENTS)"
ROLE = USER_ROLE
GRANT = (
    "In librechat.yaml: `interface: { remoteAgents: { use: true } }` (add `create`/`share` if "
    "users should share their own agents remotely), then restart LibreChat; or tick 'Remote "
    "agents: use' for the USER role in LibreChat's admin settings."
)

Verdict = tuple[Status, str, str]


def verdict(role_document: dict[str, Any] | None, error: str) -> Verdict:
    """(status, finding, fix) for the USER role's document, or the reason it could not be read."""
    if role_document is None:
        return (
            "WARN",
            f"The {ROLE} role could not be read ({error or 'no answer'}): /api/v1 answers 403 "
            "'remote_agents_not_granted' to every user if it lacks REMOTE_AGENTS USE.",
            GRANT,
        )
    permissions = role_document.get("permissions")
    remote = permissions.get("REMOTE_AGENTS") if isinstance(permissions, dict) else None
    if isinstance(remote, dict) and remote.get("USE") is True:
        return ("OK", f"LibreChat's {ROLE} role has REMOTE_AGENTS USE: /api/v1 works.", "")
    return (
        "FAIL",
        f"LibreChat's {ROLE} role lacks REMOTE_AGENTS USE (LibreChat's default): no user can get "
        "an agent API key, so /api/v1 answers 403 'remote_agents_not_granted' to everyone.",
        GRANT,
    )


def remote_agents_checks(doctor: Doctor) -> list[Finding]:
    if not prober(doctor).reachable:
        return [skipped(CHECK, TITLE, "LibreChat is unreachable.")]
    read = doctor.shared(RoleRead, RoleRead)
    status, finding, fix = verdict(read.document, read.error)
    return [Finding(CHECK, TITLE, status, finding, fix)]
