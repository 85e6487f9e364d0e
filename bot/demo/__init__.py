"""``incibot demo``: the bot on a fresh state dir with its local workspace, a little seeded history, and a short
scripted outage played through the real paths (webhooks, ``POST /changes``, signed Slack requests)."""
