"""Errors people can cause when working incidents; each carries text that is safe to show them."""


class IncidentError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class IncidentNotFound(IncidentError):
    def __init__(self, incident_id: int) -> None:
        super().__init__(f"There is no incident {incident_id}.")
        self.incident_id = incident_id
