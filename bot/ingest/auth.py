"""Webhook credentials: bearer tokens (or a basic-auth password), per source or for all sources."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping

from pydantic import SecretStr


class TokenVerifier:
    """Checks a presented credential against the configured ingest tokens in constant time.

    A token configured without a source is valid for every source.
    """

    def __init__(self, tokens: Iterable[tuple[str | None, SecretStr]]) -> None:
        given = list(tokens)
        self._tokens = [(source, _digest(secret.get_secret_value())) for source, secret in given]
        self._keys = [(source, secret.get_secret_value().encode()) for source, secret in given]

    @property
    def configured(self) -> bool:
        return bool(self._tokens)

    def verify(self, source: str, credential: str | None) -> bool:
        if not credential:
            return False
        presented = _digest(credential)
        matched = False
        for token_source, token in self._tokens:  # no early exit: timing does not reveal which matched
            equal = hmac.compare_digest(presented, token)
            matched |= equal and token_source in (None, source)
        return matched

    def verify_signature(self, source: str, body: bytes, signature: str | None) -> bool:
        """Whether ``signature`` (``sha256=<hex>``, GitHub's ``X-Hub-Signature-256``) is the HMAC-SHA256 of
        ``body`` keyed with a token valid for ``source``: GitHub webhooks sign with a secret instead of
        sending a header token."""
        scheme, _, hex_digest = (signature or "").strip().partition("=")
        if scheme != "sha256" or not hex_digest:
            return False
        presented = hex_digest.lower().encode(errors="replace")
        matched = False
        for token_source, key in self._keys:  # no early exit, as in verify()
            expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
            matched |= hmac.compare_digest(presented, expected) and token_source in (None, source)
        return matched


def credential_from_headers(headers: Mapping[str, str]) -> str | None:
    """The token in ``Authorization: Bearer T`` or ``Authorization: Basic base64(user:T)``, if any."""
    header = headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
