"""User-facing errors.

Every mistake a user can make (a bad config value, a missing file, a corrupt
checkpoint) is raised as :class:`CrossnasError` with a one-line message that names
the field and what is allowed. The CLI turns it into ``error: <message>`` on stderr
and exit code 2; library callers can catch it.
"""

from __future__ import annotations


class CrossnasError(Exception):
    """A problem with the user's input, reported as one line (CLI exit code 2)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


def format_validation_error(exc: object, source: str | None = None) -> str:
    """Turns a pydantic ``ValidationError`` into one line naming every bad field.

    Args:
        exc: a ``pydantic.ValidationError``.
        source: where the data came from (file name), prepended when given.

    Returns:
        ``"<source>: <field.path>: <message>; <field.path>: <message>"``.
    """
    parts = []
    for err in exc.errors():  # type: ignore[attr-defined]
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "value_error" and msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]  # our validators' messages read as sentences
        if err.get("type") == "extra_forbidden":
            msg = "unknown key (not allowed here)"
        parts.append(f"{loc}: {msg}" if loc else msg)
    text = "; ".join(parts)
    return f"{source}: {text}" if source else text
