"""Slack: the Bolt app, its listeners, Block Kit builders, and the durable outbox of Slack writes."""
