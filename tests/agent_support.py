"""A small knowledge base written for the agent's tests (FAQ articles and one internal runbook), and helpers
that ask the running bot through the stand-in and wait for the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.agent.answers import LOOKING
from bot.settings import Settings
from tests.slack_support import SlackBot
from tests.support import wait_for

FAQ = {
    "vpn-connect.md": """---
title: Connecting to the company VPN
audience: public
link: https://help.example.com/vpn
---
# Connecting to the company VPN

## On a laptop
Open the GlobalGate client, pick the Europe gateway and sign in with your single sign-on account. The padlock
icon turns green once the tunnel is up.

## On a phone
Install GlobalGate Mobile from the company portal app, scan the QR code shown on the intranet profile page and
approve the push notification on your authenticator.
""",
    "password-reset.md": """---
title: Resetting your password
audience: public
link: https://help.example.com/password
---
# Resetting your password

## Forgotten password
Go to the self-service portal at id.example.com, choose "Forgot password", and confirm with the code sent to
your registered mobile number. The new password must be at least 14 characters long.
""",
    "printer.md": """---
title: Printing on the office printers
audience: public
---
# Printing on the office printers

## Adding a printer
Office printers are added from the Software Center: search for "FollowMe print", install it, then release
your job at any printer by tapping your badge.
""",
}

RUNBOOK = """---
title: Rotating the payment gateway credentials
alerts: [PaymentGatewayAuthFailures]
---
# Rotating the payment gateway credentials

## Steps
Run the vault rotation job payments/rotate-gateway-key, then restart the payments-api deployment so that
the new merchant secret is picked up. Confirm the ledger reconciliation job is green afterwards.
"""


def write_kb(root: Path) -> tuple[Path, Path]:
    faq, runbooks = root / "faq", root / "runbooks" / "payments"
    faq.mkdir(parents=True)
    runbooks.mkdir(parents=True)
    for name, text in FAQ.items():
        (faq / name).write_text(text)
    (runbooks / "GatewayCredentials.md").write_text(RUNBOOK)
    return faq, runbooks.parent


def agent_settings(settings: Settings, root: Path, **more: Any) -> Settings:
    """``settings`` with search on and this module's knowledge base as the FAQ and runbook folders, at the
    product's abstention threshold (the calibrated confidence holds on a knowledge base this small: its answerable
    questions score 0.40-1.00 and the others 0.03-0.10 against 0.3)."""
    faq, runbooks = write_kb(root / "kb")
    update = {"knowledge": True, "index_dir": root / "index", "faq_dir": faq, "runbooks_dir": runbooks}
    update |= {"agent_threshold": None, **more}
    return settings.model_copy(update=update)


def thread(bot: SlackBot, channel: str, root_ts: str) -> list[dict[str, Any]]:
    root = next(message for message in bot.standin.messages(channel) if message["ts"] == root_ts)
    replies: list[dict[str, Any]] = root["replies"]
    return replies


def answers(bot: SlackBot, channel: str, root_ts: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
    """The bot's replies in the thread once ``count`` of them no longer say "looking…"."""

    def done() -> list[dict[str, Any]] | None:
        replies = [
            reply for reply in thread(bot, channel, root_ts) if reply["user"] == bot.driver.workspace.bot_user.id
        ]
        finished = [reply for reply in replies if reply["text"] != LOOKING]
        return finished if len(finished) >= count else None

    found: list[dict[str, Any]] = wait_for(done, timeout=timeout)
    return found


def ask(bot: SlackBot, question: str, *, user: str = "U0ALICE", thread_ts: str | None = None) -> dict[str, Any]:
    """``user`` asks in their DM (in ``thread_ts``'s thread); the bot's answer there."""
    bot_id = bot.driver.workspace.bot_user.id
    before = 0
    if thread_ts is not None:
        before = len([r for r in thread(bot, bot.driver.im_channel(user), thread_ts) if r["user"] == bot_id])
    said = bot.driver.direct_message(question, user=user, thread_ts=thread_ts)
    assert said.acked
    return answers(bot, said.channel, said.thread_ts or said.ts, count=before + 1)[-1]


def block_text(message: dict[str, Any]) -> str:
    parts = []
    for block in message.get("blocks") or []:
        if block.get("type") == "section":
            parts.append(str(block["text"]["text"]))
    return "\n".join(parts)


def buttons(message: dict[str, Any]) -> dict[str, str]:
    """action_id → value of every button."""
    found = {}
    for block in message.get("blocks") or []:
        elements = block.get("elements", []) if block.get("type") == "actions" else [block.get("accessory")]
        for element in elements:
            if isinstance(element, dict) and element.get("type") == "button":
                found[str(element["action_id"])] = str(element.get("value"))
    return found
