"""Closing a request's context when Django's response has been sent, not when the view returns.

Every Django server calls ``response.close()`` once the body is out: WSGI servers after
iterating it (PEP 3333), Django's ASGI handler after its last ``http.response.body``, the
test clients to emulate both. ``HttpResponseBase.close`` calls each callable in
``response._resource_closers`` (Django's own WSGI handler registers ``request.close`` the
same way), so the context closes there. A streamed body is also wrapped, so an exception
raised mid-stream is recorded and the duration ends at the last chunk.

The close may run elsewhere than the request: Django's ASGI handler and ``AsyncClient``
call it through ``sync_to_async`` in a worker thread. ``MonaContext.close`` tolerates the
foreign ``contextvars.Context``, and asgiref copies the variable's new value back to the
request's task, which therefore never keeps a closed context as its current one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

Finish = Callable[[BaseException | None], None]

__all__ = ["close_after_sending"]


def close_after_sending(response: Any, finish: Finish) -> None:
    """Call ``finish`` once ``response`` has been sent (or the server gave up on it).

    A ``FileResponse`` over a file keeps its content: re-assigning ``streaming_content``
    would clear ``file_to_stream``, and Django's WSGI handler would no longer hand the
    file to the server's ``wsgi.file_wrapper`` (gunicorn's ``sendfile()``). It is closed
    like a whole response, when sent.
    """
    if getattr(response, "streaming", False) and getattr(response, "file_to_stream", None) is None:
        if response.is_async:
            response.streaming_content = _closing_async(response.streaming_content, finish)
        else:
            response.streaming_content = _closing_sync(response.streaming_content, finish)
    closers = getattr(response, "_resource_closers", None)
    if isinstance(closers, list):
        closers.append(lambda: finish(None))
    else:  # not one of Django's response classes: nothing tells us when it is sent
        finish(None)


def _closing_sync(content: Iterator[bytes], finish: Finish) -> Iterator[bytes]:
    try:
        yield from content
    except Exception as exc:  # the view's generator failed mid-stream: record it
        finish(exc)
        raise
    finally:  # exhausted, or closed early (GeneratorExit) by Django's response.close()
        finish(None)


async def _closing_async(content: AsyncIterator[bytes], finish: Finish) -> AsyncIterator[bytes]:
    try:
        async for chunk in content:
            yield chunk
    except Exception as exc:
        finish(exc)
        raise
    finally:
        finish(None)
