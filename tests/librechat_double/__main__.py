"""`python -m tests.librechat_double --port 3080 --set register_max=100`: serve until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from .config import DoubleConfig
from .server import LibreChatDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.librechat_double", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3080)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any DoubleConfig field, e.g. allow_registration=false or login_window_s=5",
    )
    args = parser.parse_args(argv)
    config = DoubleConfig()
    try:
        config.update(**dict(_split(item) for item in args.set))
    except ValueError as error:
        parser.error(str(error))
    double = LibreChatDouble(config, host=args.host, port=args.port)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"LibreChat double listening on {double.start().url} (control: /__double__/state)")
    sys.stdout.flush()
    double.serve_forever()
    return 0


def _split(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
    return name.strip(), value.strip()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM ends the process like Ctrl-C, so the server shuts down cleanly.
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
