"""incibot, the service: ingestion, incidents, processing, and (later) Slack and remediation."""
