"""Repositories (async source; the sync twin is generated into ``_sync/repositories``)."""
