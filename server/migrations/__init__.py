"""Alembic migrations of the server schema, applied by `parcelguard server migrate` or at start-up."""
