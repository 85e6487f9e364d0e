"""Alert correlation: which incident an alert joins, decided by a learned, calibrated pair model."""
