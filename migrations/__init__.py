"""Alembic environment and revisions for the hub database (see hub.db.migrate)."""
