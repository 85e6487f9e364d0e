"""Remediation: catalogue actions run only after approval, exactly once, with an append-only audit."""
