# WARNING: generated file, do not edit. Edit its async source and run
# scripts/generate_sync.sh (tools/generate_sync.py). Generated from:
# src/digitwin_db/_async/repositories/__init__.py
"""Repositories: one class per group of tables, built by the factory."""
