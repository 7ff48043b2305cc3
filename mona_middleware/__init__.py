"""Per-request Mona monitoring: contexts that follow the request, ``export()`` from
anywhere in it, and one shared exporter that never blocks or fails the app.

>>> import mona_middleware as mona
>>> with mona.context("MY_MODEL") as ctx:
...     mona.export({"score": 0.93, "model_version": "v3"})
True

Nothing is started at import, and nothing is even loaded: each name below is imported
from its module on first use, so ``import mona_middleware.collector`` (standard library
only) or the CLI's ``--help`` do not load the exporter, and the exporter's threads start
with the first context.
"""

import importlib
import typing

from ._util.version import __version__

if typing.TYPE_CHECKING:  # what type checkers and editors see; at run time, __getattr__ below
    from ._api.batch import MonaMessage, export_batch
    from ._api.context import MonaContext, context, current_context, export, sub_context
    from ._api.control import configure, flush, shutdown, stats
    from ._api.decorators import monitor
    from ._api.propagation import outgoing_headers
    from ._api.threads import MonaThread, wrap
    from .config import MonaConfig
    from .errors import MonaConfigError, MonaError, MonaExportError

# public name -> the module that defines it
_HOMES = {
    "MonaConfig": ".config",
    "MonaConfigError": ".errors",
    "MonaContext": "._api.context",
    "MonaError": ".errors",
    "MonaExportError": ".errors",
    "MonaMessage": "._api.batch",
    "MonaThread": "._api.threads",
    "configure": "._api.control",
    "context": "._api.context",
    "current_context": "._api.context",
    "export": "._api.context",
    "export_batch": "._api.batch",
    "flush": "._api.control",
    "monitor": "._api.decorators",
    "outgoing_headers": "._api.propagation",
    "shutdown": "._api.control",
    "stats": "._api.control",
    "sub_context": "._api.context",
    "wrap": "._api.threads",
}

__all__ = [
    "MonaConfig",
    "MonaConfigError",
    "MonaContext",
    "MonaError",
    "MonaExportError",
    "MonaMessage",
    "MonaThread",
    "__version__",
    "configure",
    "context",
    "current_context",
    "export",
    "export_batch",
    "flush",
    "monitor",
    "outgoing_headers",
    "shutdown",
    "stats",
    "sub_context",
    "wrap",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mona_middleware' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
