"""Exceptions the package raises on purpose (everything else is caught and logged)."""


class MonaError(Exception):
    """Base class for errors raised by mona_middleware."""


class MonaConfigError(MonaError, ValueError):
    """An option or environment variable has a value that cannot work.

    Raised by ``configure()`` at once, naming the option or variable, so a typo is
    found at start-up and not by missing data a week later.
    """


class MonaExportError(MonaError):
    """An export was refused; raised only when ``raise_export_exceptions`` is on."""
