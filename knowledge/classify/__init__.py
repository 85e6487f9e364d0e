"""Incident classification: a closed list of categories, a calibrated text classifier, abstention."""
