"""Transports: where the exporter's batches go. One interface, interchangeable parts."""

from __future__ import annotations

from ..config import MonaConfig
from .base import SendResult, Transport, WireBatch
from .file import JsonlFileTransport
from .memory import InMemoryTransport
from .rest import MonaRestTransport

__all__ = [
    "InMemoryTransport",
    "JsonlFileTransport",
    "MonaRestTransport",
    "SendResult",
    "Transport",
    "WireBatch",
    "create_transport",
]


def create_transport(config: MonaConfig) -> Transport:
    """The transport ``config`` asks for (``transport="auto"`` picks by credentials)."""
    if not isinstance(config.transport, str):
        given: Transport = config.transport  # a transport object, not a name
        return given
    name, _reason = config.transport_choice()
    if name == "rest":
        return MonaRestTransport(config)
    if name == "memory":
        return InMemoryTransport()
    return JsonlFileTransport(config.file_path)
