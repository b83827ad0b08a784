"""Run the double with uvicorn on a background thread, and switch it off and on (same port)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from .app import create_app
from .config import DoubleConfig
from .modes import GONE, FailureMode
from .state import DoubleState

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


class LibreChatDouble:
    """A real HTTP server on loopback that answers like LibreChat v0.8.8 or v0.8.7 (`version`).

    Usage: `with LibreChatDouble(DoubleConfig(register_max=100)) as librechat: ...`, then
    `librechat.url`, `librechat.state` (counters, users, request log) and
    `librechat.set_mode("down")` / `set_mode("ok")` (refused, then back on the same port).
    """

    def __init__(
        self, config: DoubleConfig | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or DoubleConfig()
        self.state = DoubleState(self.config)
        self.host = host
        self.port = port
        self.app = create_app(self.config, state=self.state, server=self)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.RLock()
        self._revival: threading.Timer | None = None
        # A server told to exit whose socket may still be open; joined before listening again.
        self._stopping: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_listening(self) -> bool:
        return self._server is not None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LibreChatDouble:
        with self._lifecycle:
            if self._server is None:
                self._listen()
        return self

    def stop(self) -> None:
        with self._lifecycle:
            self._cancel_revival()
            stopping = self._detach_server()
        if stopping is not None:
            stopping.join(_STOP_TIMEOUT_S)

    def __enter__(self) -> LibreChatDouble:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block the calling thread until KeyboardInterrupt (used by `python -m`)."""
        self.start()
        stop_requested = threading.Event()
        with contextlib.suppress(KeyboardInterrupt):
            stop_requested.wait()
        self.stop()

    # -- switches ------------------------------------------------------------------------------

    def set_mode(self, name: str, **opts: Any) -> None:
        """ok | down | crash | slow (seconds=) | error500 (path_prefix=) | ratelimit429
        (retry_after_s=).

        "down" closes the listening socket, so clients get "connection refused"; "crash" also
        cuts the open connections mid-response, as a SIGKILL would. Any other mode (normally
        "ok") listens again on the same port. With duration_s=, "down" and "crash" come back by
        themselves.
        """
        self.apply_mode(FailureMode.build(name, **opts))

    def apply_mode(self, mode: FailureMode) -> None:
        with self._lifecycle:
            self._cancel_revival()
            self.state.set_mode(mode)
        if mode.name in GONE:
            if threading.current_thread() is self._thread:
                # Asked by a control request: stop from elsewhere once its response has left.
                threading.Thread(target=self._go_down, args=(mode, 0.05), daemon=True).start()
            else:
                self._go_down(mode, 0.0)
            return
        with self._lifecycle:
            if self._server is None:
                self._listen()

    def set_ready(self, ready: bool) -> None:
        self.state.set_ready(ready)

    def reset(self, config: DoubleConfig | None = None) -> LibreChatDouble:
        """Forget users, sessions, limits, bans, counters and the log; listen again if down.

        With `config`, its values replace the current ones (in place: `self.config` and
        `self.state.config` stay the same object), so one server can serve many tests.
        """
        if config is not None:
            self.config.replace_with(config)
        self.state.reset()
        self.apply_mode(FailureMode())
        return self

    # -- internals -----------------------------------------------------------------------------

    def _go_down(self, mode: FailureMode, delay_s: float) -> None:
        time.sleep(delay_s)
        with self._lifecycle:
            if self.state.mode != mode:
                return
            if mode.name == "crash":
                self._cut_connections()
            stopping = self._detach_server()
            if mode.duration_s is not None:
                self._revival = threading.Timer(mode.duration_s, self._revive, args=(mode,))
                self._revival.daemon = True
                self._revival.start()
        if stopping is not None:
            stopping.join(_STOP_TIMEOUT_S)

    def _cut_connections(self) -> None:
        """Abort every open connection from the server's own loop, as a killed process would."""
        server = self._server
        if server is None or not getattr(server, "servers", None):
            return
        cut = threading.Event()

        def abort_all() -> None:
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
            cut.set()

        server.servers[0].get_loop().call_soon_threadsafe(abort_all)
        cut.wait(_STOP_TIMEOUT_S)

    def _revive(self, mode: FailureMode) -> None:
        with self._lifecycle:
            if self.state.mode == mode:
                self.state.set_mode(FailureMode())
                self._listen()

    def _cancel_revival(self) -> None:
        if self._revival is not None:
            self._revival.cancel()
            self._revival = None

    def _listen(self) -> None:
        if self._stopping is not None:
            # The previous server closes its listening socket while shutting down.
            self._stopping.join(_STOP_TIMEOUT_S)
            self._stopping = None
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Coming back on the same port must not wait for TIME_WAIT connections to expire.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        self.port = listener.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                server_header=False,
                date_header=False,  # DoubleMiddleware dates responses by the double's clock
                # req.ip is computed the Express way from the raw peer and X-Forwarded-For.
                proxy_headers=False,
                timeout_graceful_shutdown=1,
            )
        )
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [listener]},
            name=f"librechat-double:{self.port}",
            daemon=True,
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                listener.close()
                raise RuntimeError(f"LibreChat double failed to start on {self.url}")
            time.sleep(0.005)
        self._server, self._thread = server, thread

    def _detach_server(self) -> threading.Thread | None:
        """Tell uvicorn to exit; the caller joins the returned thread outside the lock."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return None
        server.should_exit = True
        self._server = self._thread = None
        self._stopping = thread
        return thread
