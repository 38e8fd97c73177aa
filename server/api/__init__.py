"""Thin HTTP routers of /api/v1; the rules they call live in the modules beside this package."""
