"""Domain rules: the pure checks (no I/O) of each table group, beside ``digitwin_db.models``.

One module per group (users, ai_models, documents, sessions, audit, cleanup). Generic checks
live in ``digitwin_db.validation``, rate-limit arithmetic in ``digitwin_db.ratelimit_policy``
and cache-key rules in ``digitwin_db.cache_codec``. Nothing here is generated: the async and
the sync repositories import the same functions.
"""
