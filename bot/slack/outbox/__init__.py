"""The Slack outbox: every Slack write, committed with the change that caused it, sent exactly once.

:mod:`~bot.slack.outbox.worker` runs the items (and explains exactly-once); :mod:`~bot.slack.outbox.kinds`
is the table of message kinds; :mod:`~bot.slack.outbox.gateway` and :mod:`~bot.slack.outbox.pacing` are how
every Slack call is made, paced and its failures told apart; :mod:`~bot.slack.outbox.reconcile` finds a
message whose answer was lost; :mod:`~bot.slack.outbox.channels` resolves and joins channels.
"""

from bot.slack.outbox.worker import OutboxWorker

__all__ = ["OutboxWorker"]
