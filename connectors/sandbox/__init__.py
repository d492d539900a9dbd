"""The sandbox marketplace: AliExpress IOP and 17TRACK dialects on a local port, seeded and faulty on demand."""

from connectors.sandbox.admin import SandboxAdmin
from connectors.sandbox.server import DEFAULT_17TOKEN, SandboxServer

__all__ = ["DEFAULT_17TOKEN", "SandboxAdmin", "SandboxServer"]
