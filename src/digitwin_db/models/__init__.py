"""Pydantic models: inputs and rows, one module per domain."""

from digitwin_db.models.common import DatabaseHealth, HealthReport, Page, RepositoryCheck, Row

__all__ = ["DatabaseHealth", "HealthReport", "Page", "RepositoryCheck", "Row"]
