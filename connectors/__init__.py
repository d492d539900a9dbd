"""Marketplace connectors. The registry below is the one place that names them all."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.base import Connector

# marketplace name -> "module:Class". Explicit so that `grep -r CONNECTORS` finds every connector.
CONNECTORS: dict[str, str] = {
    "aliexpress": "connectors.aliexpress:AliExpressConnector",
    "sandbox": "connectors.aliexpress:SandboxConnector",
    "ebay": "connectors.ebay:EbayConnector",
    "amazon": "connectors.amazon:AmazonConnector",
}


def connector_class(marketplace: str) -> type[Connector]:
    """The connector class for a marketplace name; a clear error for an unknown one."""
    try:
        target = CONNECTORS[marketplace]
    except KeyError:
        known = ", ".join(sorted(CONNECTORS))
        raise ValueError(f"unknown marketplace {marketplace!r} (known: {known})") from None
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def capabilities_for(marketplace: str):  # -> Capabilities
    """What a marketplace lets the policy propose (from its connector class)."""
    return connector_class(marketplace).capabilities
