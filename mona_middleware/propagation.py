"""Send the current context with every call of a ``requests`` session or an ``httpx`` client.

    session = propagate(requests.Session())
    client = propagate(httpx.Client())          # or httpx.AsyncClient()

Only the object given is changed, never the library (no global patching): a call made
inside a context carries its class and id as ``baggage`` entries, merged with the
baggage the call already has; outside a context the call goes out untouched. The
receiving service continues the context when its adapter has
``accept_incoming_context`` on. Neither library is imported here, so this module loads
with either, both or none installed; anything else takes ``outgoing_headers()``::

    urllib.request.Request(url, headers={**headers, **outgoing_headers(headers)})
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar

from ._api.propagation import BAGGAGE, outgoing_headers
from ._util.log import Guard

__all__ = ["outgoing_headers", "propagate"]

Client = TypeVar("Client")
_ADD = Guard("could not add the context to an outgoing call")


def _add_to(headers: Any) -> None:
    """Merge the context's entries into a mutable headers mapping, in place."""
    try:
        extra = outgoing_headers(headers)
        if extra:
            if BAGGAGE not in headers:
                for name in [name for name in headers if name.lower() == BAGGAGE]:
                    del headers[name]  # one header, whatever the case it was given in
            headers[BAGGAGE] = extra[BAGGAGE]
    except Exception as exc:  # the call goes out as the app made it
        _ADD.caught(exc)


def _requests_adapter(adapter: Any) -> None:
    """Make one ``HTTPAdapter`` of one session add the context, after every other hook.

    ``HTTPAdapter.send`` calls ``add_headers(request)`` just before the request goes on
    the wire: later than OpenTelemetry's instrumentation, which would otherwise replace
    the ``baggage`` header with its own.
    """
    if getattr(adapter, "_mona_propagates", False):
        return
    original = adapter.add_headers

    def add_headers(request: Any, **kwargs: Any) -> None:
        original(request, **kwargs)
        _add_to(request.headers)

    adapter.add_headers = add_headers
    adapter._mona_propagates = True


def propagate(client: Client) -> Client:
    """Make ``client`` (``requests.Session``, ``httpx.Client`` or ``httpx.AsyncClient``) send
    the current context with each call; returns it, so it can wrap the constructor.

    For a session, the adapters mounted now are the ones that send it: mount your own
    adapters (retries...) before calling this.
    """
    requests = sys.modules.get("requests")
    httpx = sys.modules.get("httpx")
    if requests is not None and isinstance(client, requests.Session):
        for adapter in client.adapters.values():
            if hasattr(adapter, "add_headers"):
                _requests_adapter(adapter)
        return client
    if httpx is not None and isinstance(client, httpx.AsyncClient):
        hooks = client.event_hooks
        if _async_hook not in hooks["request"]:
            hooks["request"] = [*hooks["request"], _async_hook]
            client.event_hooks = hooks
        return client
    if httpx is not None and isinstance(client, httpx.Client):
        hooks = client.event_hooks
        if _sync_hook not in hooks["request"]:
            hooks["request"] = [*hooks["request"], _sync_hook]
            client.event_hooks = hooks
        return client
    raise TypeError(
        "propagate() takes a requests.Session, an httpx.Client or an httpx.AsyncClient, "
        f"got {type(client).__name__}; use outgoing_headers() for anything else"
    )


def _sync_hook(request: Any) -> None:
    """httpx's request event hook: runs in the caller's thread, so it sees its context."""
    _add_to(request.headers)


async def _async_hook(request: Any) -> None:
    """The same for ``httpx.AsyncClient``, in the calling task."""
    _add_to(request.headers)
