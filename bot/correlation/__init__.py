"""Correlation in the service: which incident each new alert joins, with the reason, and people's corrections."""
