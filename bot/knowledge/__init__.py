"""Knowledge in the bot: incident documents in the database, their vector index, runbooks, suggestions."""
