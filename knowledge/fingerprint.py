"""Alertmanager's label-set fingerprint, so alerts that arrive without one get the same identity.

Prometheus (``prometheus/common/model``) hashes the label set with 64-bit FNV-1a: label names sorted,
each name and value followed by the separator byte 0xff, printed as 16 hex digits.
"""

from collections.abc import Mapping

_FNV_OFFSET_64 = 14695981039346656037
_FNV_PRIME_64 = 1099511628211
_MASK_64 = (1 << 64) - 1
_SEPARATOR = 0xFF


def labels_fingerprint(labels: Mapping[str, str]) -> str:
    """Return the fingerprint Alertmanager would give ``labels`` (e.g. ``"3b8c1d2e4f5a6b7c"``)."""
    digest = _FNV_OFFSET_64
    for name in sorted(labels):
        for chunk in (name.encode(), labels[name].encode()):
            for byte in chunk:
                digest = ((digest ^ byte) * _FNV_PRIME_64) & _MASK_64
            digest = ((digest ^ _SEPARATOR) * _FNV_PRIME_64) & _MASK_64
    return f"{digest:016x}"
