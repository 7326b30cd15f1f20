"""Repositories: one class per group of tables, built by the factory."""
