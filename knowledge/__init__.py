"""incibot's knowledge library: alert types and (later) embeddings, search and classification.

This package never imports ``bot``: the service depends on it, not the other way round.
"""
