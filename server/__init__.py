"""The central FastAPI service: sync ingest, registry, pull orders, reviews, reports and audit."""
