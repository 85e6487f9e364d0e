"""Every command, action and event the bot answers, registered in one place.

| kind    | id                                 | module            |
|---------|------------------------------------|-------------------|
| command | each in ``bot.slack.commands``     | ``commands.py``   |
| action  | ``incident_acknowledge``           | ``actions.py``    |
| action  | ``incident_resolve``               | ``actions.py``    |
| action  | ``alerts_not_related``             | ``actions.py``    |
| action  | ``incident_classify`` (a menu)     | ``actions.py``    |
| action  | ``incident_repost``                | ``actions.py``    |
| action  | ``cause_helpful``, ``cause_wrong`` | ``rootcause.py``  |
| action  | ``cause_confirm`` (a select)       | ``rootcause.py``  |
| action  | ``remediation_run-N`` ("Run…")     | ``remediation.py``|
| action  | ``remediation_approve``/``_deny``  | ``remediation.py``|
| action  | ``remediation_rerun``              | ``remediation.py``|
| view    | ``remediation_request`` (modal)    | ``remediation.py``|
| event   | ``app_mention``                    | ``events.py`` (the agent answers)|
| event   | ``message`` in a DM (``message.im``)   | ``agent.py``      |
| action  | ``agent_notify`` ("Notify me when resolved") | ``agent.py`` |
| action  | ``agent_report_problem``, ``agent_ask_human`` | ``agent_handover.py`` |
| view    | ``agent_report`` (modal)           | ``agent_handover.py`` |
| event   | ``message`` in a help thread       | ``agent_handover.py`` |
| error   | every listener's unhandled errors  | ``errors.py``     |
"""

from __future__ import annotations

from slack_bolt import App

from bot.slack.listeners import actions, agent, agent_handover, commands, errors, events, remediation, rootcause
from bot.slack.services import SlackServices


def register_all(app: App, services: SlackServices) -> None:
    commands.register(app, services)
    actions.register(app, services)
    remediation.register(app, services)
    rootcause.register(app, services)
    agent_handover.register(app, services)
    agent.register(app, services)
    events.register(app, services)
    errors.register(app)
