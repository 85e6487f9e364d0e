"""The ASGI application: ingest routes, health, readiness and metrics."""
