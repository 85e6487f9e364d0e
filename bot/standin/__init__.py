"""A local stand-in for Slack, for tests and for ``incibot serve`` without Slack credentials.

:class:`~bot.standin.server.StandinServer` serves, on loopback only, the part of the Slack Web API incibot
uses (``POST /api/<method>``, answered with Slack's JSON shapes and error codes), Socket Mode, and
``response_url`` endpoints; it keeps users, channels, messages and the call log in a small SQLite file, and
lets tests inspect what was posted and script faults (rate limits, 5xx, latency, dropped connections) under
``/_standin/``. It is as strict as Slack's documentation: the app is installed from a manifest and a call
without its scope answers ``missing_scope``; the bot reads only channels it is in; per-method rate limits,
``response_url`` limits, tombstones and Socket Mode refreshes behave as at Slack (:mod:`bot.standin.workspace`
names the ``default`` and ``bare`` workspaces).

:class:`~bot.standin.driver.SlackDriver` plays Slack's side towards the bot: signed slash commands, button
clicks and Events API callbacks, with Slack's ack deadline and retry schedule.
"""
