"""Persistence: SQLAlchemy 2 models, engine and sessions, and the repositories the services use."""
