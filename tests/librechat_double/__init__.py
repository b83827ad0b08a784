"""A faithful stand-in for LibreChat v0.8.8's (or v0.8.7's) auth and chat APIs, over HTTP.

See README.md in this folder for what it reproduces and how to drive it.
"""

from .app import create_app
from .config import DoubleConfig
from .modes import FailureMode
from .server import LibreChatDouble
from .state import ROLE_ADMIN, ROLE_USER, DoubleState, RecordedRequest, Session, User
from .user_agent import browser_name

__all__ = [
    "ROLE_ADMIN",
    "ROLE_USER",
    "DoubleConfig",
    "DoubleState",
    "FailureMode",
    "LibreChatDouble",
    "RecordedRequest",
    "Session",
    "User",
    "browser_name",
    "create_app",
]
