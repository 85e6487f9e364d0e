"""Change events without a server: the published schema, GitHub's signature check, and shape detection."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from bot.changes import shapes
from bot.changes.generic import json_schema
from bot.changes.parsed import Ignored, IncomingChange
from bot.ingest.auth import TokenVerifier
from bot.ingest.errors import InvalidPayload
from tests.support import T0

ROOT = Path(__file__).resolve().parent.parent


def test_published_changes_schema_matches_the_model() -> None:
    published = json.loads((ROOT / "docs" / "changes.schema.json").read_text())
    assert published == json_schema(), "regenerate docs/changes.schema.json (see docs/changes.md)"


def test_signature_is_checked_against_tokens_valid_for_the_source() -> None:
    verifier = TokenVerifier([(None, SecretStr("shared")), ("pagerduty", SecretStr("pd-only"))])
    body = b'{"zen": "x"}'

    def sign(key: bytes, payload: bytes = body) -> str:
        return "sha256=" + hmac.new(key, payload, hashlib.sha256).hexdigest()

    assert verifier.verify_signature("changes", body, sign(b"shared"))
    assert verifier.verify_signature("changes", body, sign(b"shared").upper().replace("SHA256=", "sha256="))
    assert not verifier.verify_signature("changes", body, sign(b"pd-only"))  # scoped to another source
    assert not verifier.verify_signature("changes", body + b" ", sign(b"shared"))  # another body
    assert not verifier.verify_signature("changes", body, sign(b"shared").replace("sha256", "sha1"))
    assert not verifier.verify_signature("changes", body, "sha256=é")
    assert not verifier.verify_signature("changes", body, None)


def test_shapes_are_told_apart_by_header_and_members() -> None:
    generic = shapes.parse(b'{"service": "app", "kind": "config"}', {}, T0)
    argocd = shapes.parse(b'{"app": "app", "revision": "r1"}', {}, T0)
    ping = shapes.parse(b'{"app": "app"}', {"x-github-event": "ping"}, T0)
    assert isinstance(generic, IncomingChange)
    assert isinstance(argocd, IncomingChange)
    assert (generic.source, argocd.source) == ("generic", "argocd")
    assert argocd.dedup_key == "argocd:app:r1:"
    assert isinstance(ping, Ignored)


def test_identical_generic_bodies_share_a_key_and_any_difference_does_not() -> None:
    def key(body: dict[str, str]) -> str:
        parsed = shapes.parse(orjson.dumps(body), {}, T0)
        assert isinstance(parsed, IncomingChange)
        return parsed.dedup_key

    base = {"service": "app", "kind": "deploy", "version": "v1"}
    assert key(base) == key(dict(reversed(base.items())))
    assert key(base) != key({**base, "version": "v2"})
    assert key({**base, "id": "7"}) == key({**base, "id": "7", "who": "someone else"})


@pytest.mark.parametrize("body", [b"", b"null", b"[]", b'"text"', b"{bad"])
def test_a_body_that_is_not_a_json_object_names_no_field(body: bytes) -> None:
    with pytest.raises(InvalidPayload) as refused:
        shapes.parse(body, {}, T0)
    assert refused.value.field is None
