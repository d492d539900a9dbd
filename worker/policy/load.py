"""Loading the policy: the shipped default, deep-merged with a shop's TOML overrides."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from worker.policy.model import Policy

DEFAULT_POLICY_FILE = Path(__file__).with_name("default.toml")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and the key."""


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise PolicyError(f"policy file {path}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path}: invalid TOML: {exc}") from None


def _validate(data: dict[str, Any], source: str) -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"policy {source}: {problems}") from None


@lru_cache(maxsize=1)
def _default_data() -> dict[str, Any]:
    return _read_toml(DEFAULT_POLICY_FILE)


def default_policy() -> Policy:
    """The policy that ships with Sellerdesk."""
    return _validate(_default_data(), str(DEFAULT_POLICY_FILE))


def policy_from_overrides(overrides: dict[str, Any], source: str = "overrides") -> Policy:
    """The default policy with `overrides` merged in (a parsed TOML document or account settings)."""
    return _validate(_merge(_default_data(), overrides), source)


def load_policy(path: str | Path | None) -> Policy:
    """The default policy, or the default merged with the shop's file at `path`."""
    if path is None:
        return default_policy()
    p = Path(path)
    return policy_from_overrides(_read_toml(p), f"file {p}")
