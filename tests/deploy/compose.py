"""Reading compose files as Docker Compose would, without Docker: the Compose Specification's
JSON schema, `${VAR}` interpolation and the merge of several `-f` files.

The schema is the one check-jsonschema (python-jsonschema) vendors from compose-spec/compose-spec
(`check-jsonschema --builtin-schema vendor.compose-spec`), with its licence in that package.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
DEV_FILE = ROOT / "compose.dev.yaml"
LIBRECHAT_FILE = ROOT / "compose.librechat.yaml"
DOCKERFILE = ROOT / "Dockerfile"

Doc = dict[str, Any]


class InterpolationError(Exception):
    pass


@cache
def compose_schema() -> Doc:
    text = (files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    schema: Doc = json.loads(text)
    return schema


def schema_errors(doc: Mapping[str, Any]) -> list[str]:
    """Every way ``doc`` breaks the Compose Specification, as ``path: message``."""
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return sorted(
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(doc)
    )


def load(path: Path) -> Doc:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), f"{path} is not a mapping"
    return doc


# -- interpolation (compose-spec: interpolation.md) ---------------------------------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"] or "", match["arg"] or ""
        if "$" in arg:
            raise InterpolationError(f"nested interpolation is not supported: {match[0]!r}")
        value = env.get(name)
        unset_or_empty = not value
        missing = unset_or_empty if op.startswith(":") else value is None
        if op.endswith("-"):
            return arg if missing else str(value)
        if op.endswith("?"):
            if missing:
                raise InterpolationError(f"{name}: {arg}")
            return str(value)
        if op.endswith("+"):
            return "" if missing else arg
        return value or ""

    if "${" in _VARIABLE.sub("", text):
        raise InterpolationError(f"unsupported interpolation in {text!r}")
    return _VARIABLE.sub(substitute, text)


def interpolate_doc(doc: Any, env: Mapping[str, str]) -> Any:
    if isinstance(doc, dict):
        return {key: interpolate_doc(value, env) for key, value in doc.items()}
    if isinstance(doc, list):
        return [interpolate_doc(item, env) for item in doc]
    if isinstance(doc, str):
        return interpolate(doc, env)
    return doc


def required_variables(path: Path) -> set[str]:
    """The variables a file requires (``${NAME:?...}`` or ``${NAME?...}``)."""
    return {
        match["braced"]
        for match in _VARIABLE.finditer(path.read_text())
        if match["braced"] and (match["op"] or "").endswith("?")
    }


# -- normalisation and merge (compose-spec: merge.md) -------------------------------------------


def normalize_service(service: Mapping[str, Any]) -> Doc:
    """The short forms as mappings: environment and depends_on lists, volume strings."""
    out = dict(service)
    environment = out.get("environment")
    if isinstance(environment, list):
        out["environment"] = dict(
            item.split("=", 1) if "=" in item else (item, None) for item in environment
        )
    if isinstance(out.get("environment"), dict):
        out["environment"] = {
            key: None if value is None else str(value) for key, value in out["environment"].items()
        }
    if "volumes" in out:
        out["volumes"] = volume_mounts(out)
    depends_on = out.get("depends_on")
    if isinstance(depends_on, list):
        out["depends_on"] = {name: {"condition": "service_started"} for name in depends_on}
    return out


def volume_mounts(service: Mapping[str, Any]) -> list[Doc]:
    """A service's volumes in the long syntax: type, source, target, read_only."""
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mounts.append(entry)
            continue
        source, _, rest = entry.partition(":")
        target, _, mode = rest.partition(":")
        if not target:
            source, target = "", source
        bind = source.startswith((".", "/", "~"))
        mounts.append(
            {
                "type": "bind" if bind else "volume",
                "source": source,
                "target": target,
                "read_only": "ro" in mode.split(","),
            }
        )
    return mounts


_REPLACED = {"command", "entrypoint"}


def merge_service(base: Mapping[str, Any], override: Mapping[str, Any]) -> Doc:
    out = dict(base)
    for key, value in override.items():
        if key not in out or key in _REPLACED:
            out[key] = value
        elif key == "healthcheck":
            out[key] = {**out[key], **value}  # `test` is replaced as a whole
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = _merge_mapping(out[key], value)
        elif key == "volumes":
            merged = {mount["target"]: mount for mount in volume_mounts(out)}
            merged.update({mount["target"]: mount for mount in volume_mounts(override)})
            out[key] = list(merged.values())
        elif isinstance(value, list) and isinstance(out[key], list):
            out[key] = out[key] + [item for item in value if item not in out[key]]
        else:
            out[key] = value
    return out


def _merge_mapping(base: Mapping[str, Any], override: Mapping[str, Any]) -> Doc:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_mapping(out[key], value)
        else:
            out[key] = value
    return out


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Doc:
    """``docker compose -f base -f override``: services merged per service, the rest by key."""
    out = dict(base)
    for key, value in override.items():
        if key == "services":
            services = dict(out.get("services", {}))
            for name, service in value.items():
                service = normalize_service(service)
                services[name] = (
                    merge_service(services[name], service) if name in services else service
                )
            out["services"] = services
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_mapping(out[key], value)
        else:
            out[key] = value
    return out


def project(paths: list[Path], env: Mapping[str, str]) -> Doc:
    """The project `docker compose -f ... -f ...` builds from ``paths`` with ``env`` (.env)."""
    result: Doc = {}
    for path in paths:
        doc = interpolate_doc(load(path), env)
        doc["services"] = {
            name: normalize_service(service) for name, service in doc.get("services", {}).items()
        }
        result = merge(result, doc)
    return result
