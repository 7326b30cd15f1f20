"""``limits`` storages on digitwin-db (extra ``limits``): importing this module registers
the URI schemes ``postgresql://`` (:class:`PostgresStorage`) and ``async+postgresql://``
(:class:`AsyncPostgresStorage`) with ``limits``, so Flask-Limiter (``storage_uri=``) and
slowapi work unchanged::

    import digitwin_db.contrib.limits  # noqa: F401  (registers the schemes)
    from limits import parse, storage, strategies

    store = storage.storage_from_string("postgresql://app:secret@db/app")
    limiter = strategies.MovingWindowRateLimiter(store)
    limiter.hit(parse("20/minute"), "client-42")

Fixed window, moving window and sliding-window counter all work; the tables come from the
package's migrations (0008). See :mod:`digitwin_db._async.limits_storage` for the contract.
"""

from __future__ import annotations

from digitwin_db._async.limits_storage import AsyncPostgresStorage
from digitwin_db._sync.limits_storage import PostgresStorage
from digitwin_db.contrib.limits_rules import MAX_KEY_LENGTH

__all__ = ["MAX_KEY_LENGTH", "AsyncPostgresStorage", "PostgresStorage"]
