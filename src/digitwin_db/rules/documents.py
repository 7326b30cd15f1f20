"""Rules of knowledge documents (pure checks, no I/O): field limits and checks, the
updatable fields, the status values and the bounding of search texts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from psycopg.types.json import Jsonb

from digitwin_db.errors import ValidationError
from digitwin_db.models.documents import DOCUMENT_STATUSES
from digitwin_db.validation import check_choice, check_text, json_param, shown

# Limits of the table's CHECK constraints, checked here first so that bad input fails with
# a clear message before any SQL runs.
TITLE_MAX = 500
CONTENT_MAX = 5_000_000
SOURCE_MAX = 2000
MIME_TYPE_MAX = 255
ERROR_MAX = 10_000
# The longest search text accepted (10 kB of user text is fine; beyond this, refuse).
QUERY_MAX = 100_000
MAX_SEARCH_RESULTS = 100
# Only the first words of a search text are used, as web search engines do: ranking and
# ts_headline cost grows with the cube of the number of query terms (1,250 terms take
# ~30 s), so a long text must not turn into a huge tsquery.
MAX_QUERY_WORDS = 32
_WORD = re.compile(r"\w+")
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def check_title(value: object) -> str:
    return check_text(value, "title", max_length=TITLE_MAX)


def check_content(value: object) -> str:
    # Kept verbatim (not stripped): it is the document.
    return check_text(value, "content", max_length=CONTENT_MAX, strip=False)


def check_source(value: object) -> str | None:
    return None if value is None else check_text(value, "source", max_length=SOURCE_MAX)


def check_mime_type(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"mime_type must be a string, got {type(value).__name__}")
    mime = value.strip().lower()
    if len(mime) > MIME_TYPE_MAX or not _MIME_TYPE.fullmatch(mime):
        raise ValidationError(
            f"mime_type must look like 'type/subtype' (e.g. 'text/markdown', no parameters), "
            f"got {shown(value)}"
        )
    return mime


def check_metadata(value: object) -> Jsonb:
    return json_param(value, "metadata")


#: What update() may change, and how each value is checked.
UPDATERS: dict[str, Callable[[Any], Any]] = {
    "title": check_title,
    "content": check_content,
    "source": check_source,
    "mime_type": check_mime_type,
    "metadata": check_metadata,
}
#: Columns update() writes: the updatable ones plus the processing state that a new
#: content resets.
WRITABLE = (*UPDATERS, "status", "error", "chunk_count", "processed_at")


def storable(text: str) -> str:
    """``text`` with lone surrogates (not encodable in UTF-8) replaced by ``?``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def bounded_query(text: str) -> str:
    """``text`` cut after its ``MAX_QUERY_WORDS``-th run of word characters."""
    for number, word in enumerate(_WORD.finditer(text), start=1):
        if number == MAX_QUERY_WORDS:
            return text[: word.end()]
    return text


def check_status(value: object, what: str = "status") -> str:
    return check_choice(value, what, DOCUMENT_STATUSES)
