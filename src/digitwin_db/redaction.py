"""One redaction function for every way a connection string can carry a secret.

:func:`redact` masks, anywhere in a text (a URL, a libpq ``key=value`` string, or an error
message that quotes either):

- the password of a URL's userinfo: ``postgresql://app:s3cret@db/x`` ->
  ``postgresql://app:***@db/x`` (also percent-encoded, also with an unencoded ``@`` in it);
- a password in a URL's query: ``?password=…``, ``&sslpassword=…`` (keys compared
  case-insensitively after percent-decoding, so ``pass%77ord=`` too);
- ``password=…`` / ``sslpassword=…`` / ``PGPASSWORD=…`` in a ``key=value`` string, quoted
  (``password='a b\\'c'``) or not, with or without spaces around ``=``.

Everything that shows a URL or DSN (``Settings.safe_url``, ``Database.safe_url``, reprs,
configuration errors, log lines, the command line) goes through it.
"""

from __future__ import annotations

import re
import sys
from urllib.parse import unquote

__all__ = ["MASK", "SECRET_KEYS", "redact"]

MASK = "***"
#: Connection parameters whose value is a secret (lower case).
SECRET_KEYS = frozenset({"password", "sslpassword", "pgpassword"})

# A URL: scheme://… up to whitespace (a password may hold quotes).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")
# A key=value pair outside URLs: the key, "=", then a quoted or a bare value.
_KEY_VALUE = re.compile(
    r"(?<![A-Za-z0-9_])(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|[^\s]*)"
)


def _redact_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    # The authority ends at the first / ? or #; an unencoded @ in a password is tolerated
    # (the userinfo ends at the authority's last @).
    end = len(rest)
    for sep in "/?#":
        i = rest.find(sep)
        if i != -1:
            end = min(end, i)
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        userinfo, hosts = authority.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        authority = f"{userinfo}@{hosts}"
    if "?" in tail:
        path, query = tail.split("?", 1)
        fragment = ""
        if "#" in query:
            query, fragment = query.split("#", 1)
            fragment = "#" + fragment
        pairs = []
        for pair in re.split(r"([&;])", query):
            key, eq, _value = pair.partition("=")
            if eq and unquote(key).strip().lower() in SECRET_KEYS:
                pair = f"{key}={MASK}"
            pairs.append(pair)
        tail = f"{path}?{''.join(pairs)}{fragment}"
    return f"{scheme}://{authority}{tail}"


def _redact_key_values(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        if match.group("key").lower() not in SECRET_KEYS:
            return match.group(0)
        return f"{match.group('key')}{match.group('eq')}{MASK}"

    return _KEY_VALUE.sub(mask, text)


def redact(text: object) -> str:
    """``text`` (any object: its ``str``) with every password masked as ``***``."""
    value = text if isinstance(text, str) else str(text)
    out: list[str] = []
    pos = 0
    for match in _URL.finditer(value):
        out.append(_redact_key_values(value[pos : match.start()]))
        out.append(_redact_url(match.group(0)))
        pos = match.end()
    out.append(_redact_key_values(value[pos:]))
    return "".join(out)


if __name__ == "__main__":  # scripts/lib.sh: the text on stdin (argv shows in `ps`)
    print(redact(" ".join(sys.argv[1:]) if len(sys.argv) > 1 else sys.stdin.read()))
