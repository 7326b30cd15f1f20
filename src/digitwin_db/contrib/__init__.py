"""Integrations with other libraries, each behind an optional extra (SPEC §2.11).

* :mod:`digitwin_db.contrib.limits` (extra ``limits``): importing it registers ``limits``
  storages for ``postgresql://`` and ``async+postgresql://`` (Flask-Limiter, slowapi).
* :mod:`digitwin_db.contrib.fastapi` (extra ``fastapi``): the ``rate_limit()`` dependency
  and ``add_exception_handlers(app)``.

This package imports none of them: import the module you use.
"""
