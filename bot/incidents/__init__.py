"""Incidents: models, lifecycle, grouping, and read views."""
