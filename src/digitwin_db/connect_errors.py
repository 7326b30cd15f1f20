"""Name the real cause of a failed connection (pure code, no I/O).

The pool only reports "no connection within the timeout"; the libpq error behind it says
why. :func:`connect_failure_cause` turns that error into a short, secret-free sentence:
authentication failed, the database does not exist, connection refused, a startup parameter
PgBouncer rejects, a timeout, too many connections — or libpq's own first line, redacted.
"""

from __future__ import annotations

from digitwin_db.redaction import redact

__all__ = ["connect_failure_cause"]

# (SQLSTATE, fragment of libpq's message, the sentence). The server sends its FATAL message
# during the startup; psycopg keeps its SQLSTATE when it has one, else the text is matched.
_CAUSES: tuple[tuple[str | None, str, str], ...] = (
    ("28P01", "password authentication failed", "authentication failed (wrong user or password)"),
    ("28000", "no pg_hba.conf entry", "the server's pg_hba.conf refuses this client"),
    (None, "authentication failed", "authentication failed (wrong user or password)"),
    (None, "no password supplied", "authentication failed (the server wants a password)"),
    ("3D000", "does not exist", "the database does not exist"),
    (
        "08P01",
        "unsupported startup parameter",
        "PgBouncer rejects a startup parameter: add `ignore_startup_parameters = options` to "
        "pgbouncer.ini (the library sends statement_timeout and lock_timeout as options)",
    ),
    ("53300", "too many", "the server has too many connections"),
    ("57P03", "starting up", "the server is starting up or shutting down"),
    ("57P03", "shutting down", "the server is starting up or shutting down"),
    (None, "connection refused", "connection refused (no server listening at that address)"),
    (None, "timeout expired", "the connection attempt timed out"),
    (None, "could not translate host name", "the host name does not resolve"),
    (None, "name or service not known", "the host name does not resolve"),
    (None, "no route to host", "no route to the host"),
)


def connect_failure_cause(exc: BaseException) -> str:
    """A one-line, secret-free description of why ``exc`` (a connection error) happened."""
    sqlstate = getattr(exc, "sqlstate", None)
    text = str(exc)
    lowered = text.lower()
    for state, fragment, sentence in _CAUSES:
        if (state is not None and sqlstate == state) or fragment in lowered:
            return sentence
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = redact(first)[:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
