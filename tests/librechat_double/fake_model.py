"""The scripted LLM behind the double's custom endpoint, copied from the capture's fake LLM.

(`shared/librechat-chat-transcripts.md`, "How the fake LLM behaves".) What the user text asks:

- anything else: `Hello from the fake model.` as 5 chunks, one per `fake_token_delay_s`;
- `SLOW`: `w01` … `w40` (`fake_slow_token_count`), one per `fake_slow_token_delay_s`;
- `RUNCODE` with `ephemeralAgent.execute_code`: a `bash_tool` call, the Code API's `42` and a
  `plot.png`, then `The code ran and printed 42.` (6 chunks);
- `LLMERROR`: the upstream answers 500; LibreChat retries silently, then ends the turn with an
  error content part after `fake_llm_error_delay_s`;
- `MARKDOWN`: a short Markdown answer (heading, list, inline and fenced code), in chunks;
- `ECHO:<text>` at the start: `<text>` back, in chunks (what a model quoting its input does);
- titles: `Fake Chat Title` (`fake_title`).

This module is what the model and the Code API say; generation.py is what LibreChat does
around it (events, content parts, saves).
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from enum import Enum


class Script(Enum):
    PLAIN = "plain"
    SLOW = "slow"
    CODE = "code"
    LLM_ERROR = "llm_error"
    MARKDOWN = "markdown"
    ECHO = "echo"


PLAIN_REPLY = ("Hello", " from", " the", " fake", " model.")
# Not from the captures (their fake LLM had no such script): Markdown for the chat UI to render.
MARKDOWN_TEXT = (
    "## Reading a CSV in Python\n\n"
    "Use the **standard library**: `csv.DictReader` yields one dict per row.\n\n"
    "- no extra dependency\n"
    "- works with large files\n\n"
    "```python\n"
    "import csv\n\n"
    'with open("data.csv") as handle:\n'
    '    total = sum(int(row["y"]) for row in csv.DictReader(handle))\n'
    "print(total)  # 6\n"
    "```\n\n"
    "That prints the sum of column `y`."
)
ECHO_PREFIX = "ECHO:"
CODE_REPLY = ("The", " code", " ran", " and", " printed", " 42.")
TOOL_NAME = "bash_tool"
# The argument text exactly as the fake LLM streamed it (note the `": "` spacing).
TOOL_ARG_CHUNKS = ('{"command', '": "python3 -c \'', "print(6*7)'\"}")
TOOL_OUTPUT = (
    "stdout:\n42\n\nGenerated files:\nSession files: 1 persisted file(s) are available in "
    "/mnt/data, including 1 image(s). Use known /mnt/data paths directly in later code-tool "
    "calls. The app displays files/images automatically; do not invent download links or wrap "
    "generated images in Markdown."
)
# The fake Code API's fixed 21-character ids.
CODE_SESSION_ID = "SeSsIoN0123456789abcd"
CODE_FILE_ID = "FiLe0123456789abcdefg"
UPLOAD_SESSION_ID = "UpSeSs0123456789abcde"
UPLOAD_FILE_ID = "UpFiLe0123456789abcde"
PLOT_FILENAME = "plot.png"
LLM_ERROR_TEXT = "An error occurred while processing the request: 500 fake upstream failure"
# Schema tokens of the four tools `execute_code` expands to (read_file, bash_tool, ...).
TOOL_COUNT = 4
TOOL_SCHEMA_TOKENS = 1958
MAX_CONTEXT_TOKENS = 30400
# maxContextTokens minus LibreChat's 5 % reserve.
CONTEXT_BUDGET = 28880
# What the fake LLM reported as completion tokens on the captures.
COMPLETION_TOKENS = 3

_PIECES = re.compile(r"[A-Z]{2,}(?![a-z])|[A-Za-z][a-z]*|\d{1,3}|[^\sA-Za-z\d]")


def choose_script(text: str, *, code_enabled: bool) -> Script:
    if text.startswith(ECHO_PREFIX):
        return Script.ECHO
    if "LLMERROR" in text:
        return Script.LLM_ERROR
    if "RUNCODE" in text and code_enabled:
        return Script.CODE
    if "SLOW" in text:
        return Script.SLOW
    if "MARKDOWN" in text:
        return Script.MARKDOWN
    return Script.PLAIN


def chunks(text: str) -> tuple[str, ...]:
    """Text as an LLM streams it: pieces of a word or two, whitespace kept with the next one."""
    return tuple(re.findall(r"\s*\S+", text)) or (text,)


def markdown_reply() -> tuple[str, ...]:
    return chunks(MARKDOWN_TEXT)


def echo_reply(text: str) -> tuple[str, ...]:
    return chunks(text[len(ECHO_PREFIX) :].strip())


def slow_reply(count: int) -> tuple[str, ...]:
    return tuple(f"w{i:02d}" if i == 1 else f" w{i:02d}" for i in range(1, count + 1))


def token_count(text: str) -> int:
    """An approximation of tiktoken's count plus the 4 tokens LibreChat adds per message.

    Exact for the captured texts ("Hello there, say something." is 10, "SLOW resume test."
    is 9); within a token or two elsewhere. Nothing in the double depends on it.
    """
    count = 0
    for piece in _PIECES.findall(text):
        count += math.ceil(len(piece) / 3) if piece.isupper() and len(piece) > 1 else 1
    return count + 4


def _png(width: int, height: int) -> bytes:
    """A real RGBA PNG (the plot the fake Code API returns, as LibreChat re-encodes it)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    rows = b"".join(
        b"\x00" + b"".join(bytes((40 * x, 40 * y, 200, 255)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


PLOT_PNG = _png(4, 4)
PLOT_WIDTH = PLOT_HEIGHT = 4
