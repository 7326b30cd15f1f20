"""Integrations with other libraries, each behind an optional extra (SPEC §2.11).

* :mod:`digitwin_db.contrib.limits` (extra ``limits``): importing it registers ``limits``
  storages for ``postgresql://`` and ``async+postgresql://`` (Flask-Limiter, slowapi).
* :mod:`digitwin_db.contrib.fastapi` (extra ``fastapi``): the ``rate_limit()`` dependency
  and ``add_exception_handlers(app)``.
* :mod:`digitwin_db.contrib.langchain` (extra ``langchain``): ``PostgresLLMCache`` (a
  LangChain ``BaseCache``) and ``PostgresByteStore`` (a ``ByteStore`` over a kv namespace).
* :mod:`digitwin_db.contrib.dogpile` (extra ``dogpile``): the dogpile.cache backend
  ``"digitwin_db"`` with a distributed mutex.
* :mod:`digitwin_db.contrib.prometheus` (extra ``prometheus``): a ``prometheus_client``
  collector of the call statistics, cache hit rates and pool stats.

This package imports none of them: import the module you use.
"""
