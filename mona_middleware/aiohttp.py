"""aiohttp: ``instrument(app, **options)``, one Mona context per request.

    app = web.Application()
    app.router.add_get("/items/{item_id}", item)
    mona_middleware.aiohttp.instrument(app, context_class="SHOP_API")
    web.run_app(app)

aiohttp is neither WSGI nor ASGI, so it gets its own middleware, put first in
``app.middlewares`` so that it sees what every other middleware does (an auth check's
401, an error page). The options and request fields are the other adapters' ones; the
route is the matched resource's canonical path (``/items/{item_id}``, sub-application
prefixes included), never the raw path. The context is opened in the request's task
before the handler runs and closed when the middleware returns the response, so what
the handler and its sub-tasks export lands in it.

The exporter is flushed (off the event loop) on the app's ``on_cleanup``, which
``web.run_app`` runs at SIGINT/SIGTERM and ``AppRunner.cleanup()`` runs when a test or
a custom runner stops: a stopping server sends what it holds.

Hooks: ``request_hook(ctx, request)``, ``response_hook(ctx, request, response)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

try:
    from aiohttp import web
except ImportError as exc:  # pragma: no cover - exercised by the tox core env
    raise ImportError(
        "mona_middleware.aiohttp needs aiohttp: pip install 'mona_middleware[aiohttp]'"
    ) from exc

from ._api.context import passing_through
from ._runtime import process
from ._util.log import Guard
from ._web.recorder import WebRecorder

__all__ = ["MONITOR", "RECORDER", "instrument"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ROUTE = Guard("could not read the request's route")
_CLOSE = Guard("could not close the request's context")
_FLUSH = Guard("flush at the aiohttp app's cleanup failed")

# Where the app keeps its recorder: ``app[RECORDER]`` (an AppKey where aiohttp has them).
RECORDER: Any = (
    web.AppKey("mona_recorder", WebRecorder) if hasattr(web, "AppKey") else "mona_recorder"
)
MONITOR = RECORDER  # its name before 0.2 ("monitor" is the decorator's word now)


def instrument(app: web.Application, **options: Any) -> WebRecorder:
    """Monitor ``app``: its first middleware, and a flush on its cleanup. Returns the recorder.

    ``options`` are the common adapter and exporter options. Call it before the app
    starts (aiohttp freezes the middleware list then); a second call changes nothing.

    >>> app = web.Application()
    >>> recorder = instrument(app, context_class="SHOP_API", handle_sigterm=False)
    >>> app[RECORDER] is recorder, recorder.options.context_class
    (True, 'SHOP_API')
    """
    if RECORDER in app:
        known: WebRecorder = app[RECORDER]
        return known
    recorder = WebRecorder(options)
    app[RECORDER] = recorder
    app.middlewares.insert(0, _middleware(recorder))
    app.on_cleanup.append(_flush_on_cleanup)
    return recorder


def _middleware(recorder: WebRecorder) -> Any:
    options = recorder.options
    request_hook, response_hook = options.request_hook, options.response_hook

    @web.middleware
    async def mona_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = recorder.start(request.method, request.path, request.headers.get)
        if ctx is None:  # excluded or off: no context the connection's task may hold
            with passing_through():
                return await handler(request)
        state = ctx.request
        recorder.call_hook(request_hook, ctx, request)
        try:
            response = await handler(request)
            state.status = response.status
            if response_hook is not None:
                recorder.call_hook(response_hook, ctx, request, response)
            return response
        except web.HTTPException as exc:  # raised responses (404, redirects): a status
            state.status = exc.status
            raise
        except BaseException as exc:  # aiohttp answers 500
            state.exception = exc
            raise
        finally:
            _close(recorder, ctx, request)

    return mona_middleware


def _close(recorder: WebRecorder, ctx: Any, request: web.Request) -> None:
    """Add the route and close; runs in ``finally``, so it must never raise."""
    try:  # guarded sites (see Guard): try is free on this path, a with is not
        ctx.request.route = route(request)
    except Exception as exc:
        _ROUTE.caught(exc)
    try:
        recorder.finish(ctx)
    except Exception as exc:
        _CLOSE.caught(exc)


def route(request: web.Request) -> str | None:
    """The matched resource's canonical path; None for a 404/405 (no resource matched).

    >>> app = web.Application()
    >>> resource = app.router.add_resource("/items/{item_id}")
    >>> resource.canonical
    '/items/{item_id}'
    """
    resource = request.match_info.route.resource
    return None if resource is None else resource.canonical


async def _flush_on_cleanup(app: web.Application) -> None:
    """Flush in a worker thread: other apps on the loop keep running while Mona answers."""
    try:
        await asyncio.to_thread(process.flush, process.config().shutdown_timeout)
    except Exception as exc:
        _FLUSH.caught(exc)
