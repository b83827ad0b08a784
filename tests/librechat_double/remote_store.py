"""Agents, agent API keys and role permissions: what LibreChat's remote agents API reads.

Facts from LibreChat v0.8.7:

* Agent API keys (``packages/data-schemas/src/methods/agentApiKey.ts``): ``sk-`` followed by 32
  random bytes in hex; stored as a SHA-256 hash with the first 8 characters as ``keyPrefix``; a
  key past its ``expiresAt`` no longer validates; deleting the account deletes its keys
  (``deleteUserController`` calls ``deleteAllAgentApiKeys``).
* Roles (``packages/data-provider/src/roles.ts``): the USER role's ``REMOTE_AGENTS`` permissions
  (``USE``, ``CREATE``, ``SHARE``, ``SHARE_PUBLIC``) are all false by default, ADMIN's all true.
  An operator changes them in librechat.yaml (``interface.remoteAgents.use``) or in the admin UI.
* Remote access (``packages/api/src/apiKeys/service.ts getRemoteAgentPermissions``): the agent's
  owner (``SHARE`` on the AGENT) has every bit; anyone else needs ``VIEW`` on the agent as a
  ``REMOTE_AGENT`` resource (shared with them, or publicly).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .ids import nanoid
from .tokens import iso_timestamp, new_object_id, sha256_hex

ROLE_USER = "USER"
ROLE_ADMIN = "ADMIN"
REMOTE_AGENTS = "REMOTE_AGENTS"
PERMISSIONS = ("USE", "CREATE", "SHARE", "SHARE_PUBLIC")
KEY_PREFIX = "sk-"
KEY_RANDOM_BYTES = 32


@dataclass
class Agent:
    id: str
    object_id: str
    name: str
    author_id: str
    created_at: float
    description: str = ""
    provider: str = "Fake"
    tools: tuple[str, ...] = ()
    remote_viewers: set[str] = field(default_factory=set)
    remote_public: bool = False

    def as_model(self) -> dict[str, object]:
        """The agent as ``/v1/models`` lists it (ListModelsController / GetModelController)."""
        document: dict[str, object] = {
            "id": self.id,
            "object": "model",
            "created": int(self.created_at),
            "owned_by": "librechat",
            "permission": [],
            "root": self.id,
            "parent": None,
            "name": self.name,
            "provider": self.provider,
        }
        if self.description:  # res.json drops an undefined description
            document["description"] = self.description
        return document


@dataclass
class ApiKey:
    id: str
    user_id: str
    name: str
    key_hash: str
    key_prefix: str
    created_at: float
    expires_at: float | None = None
    last_used_at: float | None = None

    def listed(self) -> dict[str, object]:
        """listAgentApiKeys / getAgentApiKeyById: never the key or its hash."""
        document: dict[str, object] = {
            "id": self.id,
            "name": self.name,
            "keyPrefix": self.key_prefix,
            "createdAt": iso_timestamp(self.created_at),
        }
        if self.last_used_at is not None:
            document["lastUsedAt"] = iso_timestamp(self.last_used_at)
        if self.expires_at is not None:
            document["expiresAt"] = iso_timestamp(self.expires_at)
        return document


def default_roles() -> dict[str, dict[str, dict[str, bool]]]:
    return {
        ROLE_USER: {REMOTE_AGENTS: dict.fromkeys(PERMISSIONS, False)},
        ROLE_ADMIN: {REMOTE_AGENTS: dict.fromkeys(PERMISSIONS, True)},
    }


class RemoteAgentsStore:
    """Thread-safe; the double's handlers and the tests share one."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "_lock", threading.RLock()):
            self._agents: dict[str, Agent] = {}
            self._keys: dict[str, ApiKey] = {}
            self._roles = default_roles()
            self.completions = 0
            self.completions_aborted = 0

    # -- roles -----------------------------------------------------------------------------

    def grant(self, role: str, permission: str = "USE", *, value: bool = True) -> None:
        """What `interface.remoteAgents.<permission>: true` in librechat.yaml does to a role."""
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown REMOTE_AGENTS permission {permission!r}")
        with self._lock:
            self._roles.setdefault(role, {}).setdefault(
                REMOTE_AGENTS, dict.fromkeys(PERMISSIONS, False)
            )[permission] = value

    def allows(self, role: str, permission: str = "USE") -> bool:
        """checkAccess: the role's `permissions.REMOTE_AGENTS.<permission>` (no role: refused)."""
        with self._lock:
            return bool(self._roles.get(role, {}).get(REMOTE_AGENTS, {}).get(permission))

    def role_document(self, role: str) -> dict[str, object] | None:
        with self._lock:
            permissions = self._roles.get(role)
            if permissions is None:
                return None
            return {"name": role, "permissions": {k: dict(v) for k, v in permissions.items()}}

    # -- agents ----------------------------------------------------------------------------

    def add_agent(
        self,
        *,
        name: str,
        author_id: str,
        description: str = "",
        tools: tuple[str, ...] = (),
        shared_with: tuple[str, ...] = (),
        public: bool = False,
    ) -> Agent:
        now = self._now()
        agent = Agent(
            id=f"agent_{nanoid()}",
            object_id=new_object_id(now),
            name=name,
            author_id=author_id,
            created_at=now,
            description=description,
            tools=tools,
            remote_viewers=set(shared_with),
            remote_public=public,
        )
        with self._lock:
            self._agents[agent.id] = agent
        return agent

    def share_remote(self, agent_id: str, user_id: str) -> None:
        with self._lock:
            self._agents[agent_id].remote_viewers.add(user_id)

    def agent(self, agent_id: str) -> Agent | None:
        with self._lock:
            return self._agents.get(agent_id)

    def has_remote_access(self, user_id: str, agent: Agent) -> bool:
        return agent.author_id == user_id or agent.remote_public or user_id in agent.remote_viewers

    def remote_agents_of(self, user_id: str) -> list[Agent]:
        with self._lock:
            return [a for a in self._agents.values() if self.has_remote_access(user_id, a)]

    # -- API keys --------------------------------------------------------------------------

    def create_key(
        self, user_id: str, name: str, expires_at: float | None = None
    ) -> tuple[ApiKey, str]:
        plaintext = KEY_PREFIX + secrets.token_hex(KEY_RANDOM_BYTES)
        now = self._now()
        key = ApiKey(
            id=new_object_id(now),
            user_id=user_id,
            name=name,
            key_hash=sha256_hex(plaintext),
            key_prefix=plaintext[:8],
            created_at=now,
            expires_at=expires_at,
        )
        with self._lock:
            self._keys[key.id] = key
        return key, plaintext

    def validate_key(self, plaintext: str) -> ApiKey | None:
        """validateAgentApiKey: the key by its hash, unexpired; marks it used."""
        digest = sha256_hex(plaintext)
        now = self._now()
        with self._lock:
            found = next((k for k in self._keys.values() if k.key_hash == digest), None)
            if found is None or (found.expires_at is not None and found.expires_at < now):
                return None
            found.last_used_at = now
            return found

    def keys_of(self, user_id: str) -> list[ApiKey]:
        with self._lock:
            found = [k for k in self._keys.values() if k.user_id == user_id]
        return sorted(found, key=lambda k: k.created_at, reverse=True)

    def key_of(self, key_id: str, user_id: str) -> ApiKey | None:
        with self._lock:
            found = self._keys.get(key_id)
            return found if found is not None and found.user_id == user_id else None

    def delete_key(self, key_id: str, user_id: str) -> bool:
        with self._lock:
            if self.key_of(key_id, user_id) is None:
                return False
            del self._keys[key_id]
            return True

    def delete_user_keys(self, user_id: str) -> int:
        with self._lock:
            doomed = [k.id for k in self._keys.values() if k.user_id == user_id]
            for key_id in doomed:
                del self._keys[key_id]
            return len(doomed)

    def count_completion(self, *, aborted: bool) -> None:
        with self._lock:
            self.completions += 1
            self.completions_aborted += int(aborted)
