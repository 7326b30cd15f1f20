"""Every SQL statement of the package, one module per repository.

Each statement is a module constant (a ``LiteralString``, as psycopg's typing wants) with a
comment line saying what it does, in the spirit of aiosql's named queries. Parameters are
always bound (``%(name)s``); identifiers, when they vary, go through ``psycopg.sql``.
"""
