"""Root-cause suggestions in the running service: live rankings of incidents, people's feedback, confirmed causes."""
