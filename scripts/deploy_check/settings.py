"""ATTNSERVE_* variables against the server's own `Settings` (service/config.py)."""

from __future__ import annotations

from typing import Any

from service.config import ConfigError, Settings, load_settings


def settings_default(name: str) -> Any:
    """The default of one `Settings` field, as the server would start with it."""
    return Settings.model_fields[name].get_default(call_default_factory=True)


def container_env(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str | None]:
    """ATTNSERVE_* and other variables the container gets: ConfigMaps first, env wins."""
    configmaps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []) or []:
        ref = (source.get("configMapRef") or {}).get("name")
        if ref in configmaps:
            env.update(configmaps[ref].get("data", {}) or {})
    for item in container.get("env", []) or []:
        env[item["name"]] = item.get("value") if "valueFrom" not in item else None
    return env


def server_settings(env: dict[str, str | None]) -> tuple[Settings | None, str | None]:
    """The server's Settings for these ATTNSERVE_* values, or the one-line error it would print."""
    flags: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("ATTNSERVE_"):
            continue
        field_name = name.removeprefix("ATTNSERVE_").lower()
        if field_name not in Settings.model_fields:
            return None, f"{name} is not a server setting (service/config.py)"
        if value is not None:
            flags[field_name] = value
    try:
        return load_settings(**flags), None
    except ConfigError as error:
        return None, str(error)
