"""Web links to Slack messages (``/archives/…/p…``), from the workspace's URL (``auth.test``, asked once per token)."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

_workspace_urls: dict[str, str] = {}


def workspace_url(client: WebClient) -> str | None:
    """The workspace's web address (``https://acme.slack.com/``); None when Slack does not say."""
    token = client.token or ""
    if token not in _workspace_urls:
        try:
            _workspace_urls[token] = str(client.auth_test().get("url") or "")
        except SlackApiError:
            return None
    return _workspace_urls[token] or None


def message_link(base: str, channel: str, ts: str, thread_ts: str | None = None) -> str:
    """The web link of message ``ts`` in ``channel`` under the workspace address ``base``."""
    query = f"?thread_ts={thread_ts}&cid={channel}" if thread_ts and thread_ts != ts else ""
    return f"{base.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}{query}"


def permalink(client: WebClient, channel: str, ts: str, thread_ts: str | None = None) -> str | None:
    """The web link of message ``ts`` in ``channel`` (None when the workspace's address is unknown)."""
    base = workspace_url(client)
    return message_link(base, channel, ts, thread_ts) if base else None
