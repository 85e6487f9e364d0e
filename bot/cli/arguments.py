"""Argument types shared by the command-line tools."""

from __future__ import annotations

import argparse


def probability(text: str) -> float:
    """A join threshold: a probability strictly between 0 and 1 (argparse names the option when it fails)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1 (exclusive), got {text}")
    return value
