"""Alert ingestion: authenticated webhooks, one adapter per source, durable group-committed storage."""
