"""Database access: the declarative base, the engine with its dialect quirks, and migrations."""
