"""LibreChat's zod `registerSchema` / `loginSchema`, with zod v3's exact issue texts.

zod semantics that shape the messages:
- every field is checked and its issues listed in schema order, joined by `errorsToString`
  as `<path>: <message>` with a space between issues;
- a missing field says `Required`, a wrong type `Expected string, received <type>`, and such a
  field "aborts" the object, so the object-level password comparison is then skipped;
- length and format failures do not abort, so refinements still run after them (a 3-space
  password gets both the length and the "only spaces" message);
- lengths are JavaScript lengths (UTF-16 code units).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final


class _Missing:
    """A JSON key that is absent (JavaScript `undefined`), as opposed to `null`."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

# zod 3.22.3+ `z.string().email()`; ASCII-only case folding, as JavaScript's /i without /u.
_EMAIL = re.compile(
    r"(?!\.)(?!.*\.\.)([A-Z0-9_'+\-.]*)[A-Z0-9_+-]@([A-Z0-9][A-Z0-9\-]*\.)+[A-Z]{2,}",
    re.IGNORECASE | re.ASCII,
)
_USERNAME_INJECTION = re.compile(r"('|--|\$ne|\$gt|\$lt|\$or|\{|\}|\*|;|<|>|/|=)", re.IGNORECASE)
_USERNAME_BASIC = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@#$%&*()"
)
_USERNAME_SCRIPTS = (
    "LATIN",
    "CYRILLIC",
    "DEVANAGARI",
    "CJK UNIFIED IDEOGRAPH",
    "CJK COMPATIBILITY IDEOGRAPH",
    "ARABIC",
    "HIRAGANA",
    "KATAKANA",
    "HANGUL",
)
_COMMON_NUMBER_PREFIXES = (
    "DIGIT",
    "FULLWIDTH DIGIT",
    "SUPERSCRIPT",
    "SUBSCRIPT",
    "VULGAR FRACTION",
)
# Characters JavaScript's String.prototype.trim() removes.
_JS_WHITESPACE = frozenset(
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


@dataclass(frozen=True)
class Issue:
    path: str
    message: str


def errors_to_string(issues: list[Issue]) -> str:
    """`errorsToString` from librechat-data-provider."""
    return " ".join(f"{issue.path}: {issue.message}" for issue in issues)


def js_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def js_trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and text[start] in _JS_WHITESPACE:
        start += 1
    while end > start and text[end - 1] in _JS_WHITESPACE:
        end -= 1
    return text[start:end]


def js_type_name(value: object) -> str:
    """zod's `getParsedType` for values that can come out of JSON."""
    if value is MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "nan" if value != value else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_registration(body: object, *, min_password_length: int) -> list[Issue]:
    if not isinstance(body, dict):
        return [_type_issue("", body, expected="object")]
    issues: list[Issue] = []
    aborted = False
    for path, checked in (
        ("name", _string(body.get("name", MISSING), min_len=3, max_len=80)),
        ("username", _username(body.get("username", MISSING))),
        ("email", _string(body.get("email", MISSING), email=True)),
        ("password", _password(body.get("password", MISSING), min_password_length)),
        ("confirm_password", _password(body.get("confirm_password", MISSING), min_password_length)),
    ):
        messages, field_aborted = checked
        issues.extend(Issue(path, message) for message in messages)
        aborted = aborted or field_aborted
    if not aborted and body.get("confirm_password") != body.get("password"):
        issues.append(Issue("", "The passwords did not match"))
    return issues


def validate_login(body: object, *, min_password_length: int) -> list[Issue]:
    if not isinstance(body, dict):
        return [_type_issue("", body, expected="object")]
    issues: list[Issue] = []
    for path, (messages, _aborted) in (
        ("email", _string(body.get("email", MISSING), email=True)),
        ("password", _password(body.get("password", MISSING), min_password_length)),
    ):
        issues.extend(Issue(path, message) for message in messages)
    return issues


def _type_issue(path: str, value: object, *, expected: str) -> Issue:
    if value is MISSING:
        return Issue(path, "Required")
    return Issue(path, f"Expected {expected}, received {js_type_name(value)}")


_Checked = tuple[list[str], bool]


def _string(
    value: object, *, min_len: int | None = None, max_len: int | None = None, email: bool = False
) -> _Checked:
    if not isinstance(value, str):
        return [_type_issue("", value, expected="string").message], True
    messages: list[str] = []
    length = js_length(value)
    if min_len is not None and length < min_len:
        messages.append(f"String must contain at least {min_len} character(s)")
    if max_len is not None and length > max_len:
        messages.append(f"String must contain at most {max_len} character(s)")
    if email and not _EMAIL.fullmatch(value):
        messages.append("Invalid email")
    return messages, False


def _password(value: object, min_len: int) -> _Checked:
    messages, aborted = _string(value, min_len=min_len, max_len=128)
    if not aborted and isinstance(value, str) and not js_trim(value):
        messages.append("Password cannot be only spaces")
    return messages, aborted


def _username(value: object) -> _Checked:
    """`z.union([z.literal(''), usernameSchema]).transform(...).optional().nullable()`."""
    if value is MISSING or value is None or value == "":
        return [], False
    if not isinstance(value, str):
        # Both union branches fail on type, so zod reports the union itself.
        return ["Invalid input"], True
    messages, _ = _string(value, min_len=2, max_len=80)
    if not all(_allowed_username_char(char) for char in value):
        messages.append("Invalid characters in username")
    if _USERNAME_INJECTION.search(value):
        messages.append("Potential injection attack detected")
    return messages, False


def _allowed_username_char(char: str) -> bool:
    """Approximates `[\\p{Script=Latin|Common|Cyrillic|Devanagari|Han|Arabic|Hiragana|...}]`.

    Python's `re` has no script properties, so a script is read from the Unicode character
    name, and "Common" is taken as punctuation, symbols, separators, control characters and
    script-less digits.
    Exact for ASCII, which is what a backend sends; approximate beyond it.
    """
    if char in _USERNAME_BASIC:
        return True
    name = unicodedata.name(char, "")
    if name.startswith(_USERNAME_SCRIPTS):
        return True
    category = unicodedata.category(char)
    if category[0] in {"P", "S", "Z"} or category == "Cc":
        return True
    return category[0] == "N" and name.startswith(_COMMON_NUMBER_PREFIXES)
