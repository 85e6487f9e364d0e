"""The model registry: versions of the learned models, their cards and metrics, and one champion per kind."""
