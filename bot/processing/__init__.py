"""The worker that turns stored deliveries into incident changes, after the 202."""
