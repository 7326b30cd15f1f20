"""Add digitwin-db's PostgreSQL storage to the storage lists of limits' own test-suite.

Usage: python patch_limits.py SUITE_DIR   (an unpacked limits sdist; patched in place)

limits parametrizes its storage tests over lists of ``pytest.param(uri, args, fixture)``
(``ALL_STORAGES`` and ``ALL_STORAGES_ASYNC`` in ``tests/utils.py``, and the lists of
``TestConcreteStorages`` in ``tests/test_storage.py`` and ``tests/aio/test_storage.py``),
one entry per backend, marked with the backend's name. This script adds one ``postgresql``
entry to each list, the same way Redis, memcached and MongoDB are listed, replaces the
conftest (Docker fixtures of the other backends) with ours and writes a pytest.ini without
coverage and Docker options. Every anchor must be found exactly once, or the script fails.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARK = "# --- added by digitwin-db scripts/peer/patch_limits.py"

UTILS_ENTRIES = f"""
{MARK}
_DIGITWIN_PG_URL = os.environ["DIGITWIN_PEER_PG_URL"]
ALL_STORAGES["postgresql"] = pytest.param(
    _DIGITWIN_PG_URL, {{}}, lf("postgresql"), marks=pytest.mark.postgresql, id="postgresql"
)
ALL_STORAGES_ASYNC["postgresql"] = pytest.param(
    "async+" + _DIGITWIN_PG_URL,
    {{}},
    lf("postgresql"),
    marks=pytest.mark.postgresql,
    id="postgresql",
)

"""

CONCRETE_ENTRY = f"""        {MARK}
        pytest.param(
            {{prefix}}__import__("os").environ["DIGITWIN_PEER_PG_URL"],
            {{{{}}}},
            __import__("digitwin_db.contrib.limits").contrib.limits.{{cls}},
            lf("postgresql"),
            marks=pytest.mark.postgresql,
            id="postgresql",
        ),
"""

PYTEST_INI = """[pytest]
# Written by digitwin-db scripts/peer/patch_limits.py: limits' own settings without the
# coverage (--cov) and Docker (-K) options of its development setup.
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
norecursedirs = build *.egg
timeout = 300
markers =
    unit: mark a test as a unit test.
    integration: mark a test as an integration test.
    redis: redis tests
    redis_sentinel: redis sentinel tests
    redis_cluster: redis cluster tests
    memory: in memory tests
    mongodb: mongodb tests
    memcached: memcached tests
    valkey: valkey tests
    valkey_cluster: valkey cluster tests
    postgresql: digitwin-db PostgreSQL storage tests
    benchmark: benchmarks
addopts =
    --tb=short
    -rfEsxX
    -p no:cacheprovider
filterwarnings =
    error
    module::ResourceWarning
    module::pytest.PytestUnraisableExceptionWarning
"""


def _insert_once(path: Path, anchor: str, text: str, *, before: bool = True) -> None:
    source = path.read_text(encoding="utf-8")
    if MARK in source:
        raise SystemExit(f"{path} is already patched")
    count = source.count(anchor)
    if count != 1:
        raise SystemExit(f"{path}: anchor found {count} times, expected once: {anchor!r}")
    new = anchor if not before else ""
    source = source.replace(anchor, (text + anchor) if before else (new + text))
    path.write_text(source, encoding="utf-8")


def main(suite: Path) -> None:
    tests = suite / "tests"
    _insert_once(tests / "utils.py", "\nall_storage = pytest.mark.parametrize(", UTILS_ENTRIES)
    for relative, url_anchor, prefix, cls in (
        ("test_storage.py", '"mongodb://localhost:37017/",', "", "PostgresStorage"),
        (
            "aio/test_storage.py",
            '"async+mongodb://localhost:37017/",',
            '"async+" + ',
            "AsyncPostgresStorage",
        ),
    ):
        anchor = "        pytest.param(\n            " + url_anchor
        entry = CONCRETE_ENTRY.format(prefix=prefix, cls=cls)
        _insert_once(tests / relative, anchor, entry)
    shutil.copyfile(HERE / "limits_conftest.py", tests / "conftest.py")
    (suite / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
