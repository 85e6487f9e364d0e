"""Builds the remediation service and its runner from settings (for the composition root)."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from bot.db.database import Database
from bot.remediation.approvals import GroupResolver
from bot.remediation.catalogue import Catalogue
from bot.remediation.executors import CatalogueExecutor
from bot.remediation.runner import Notice, Notify, Runner
from bot.remediation.service import Clock, RemediationService
from bot.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Remediation:
    service: RemediationService
    runner: Runner


def no_user_groups(group: str) -> Collection[str]:
    """Until Slack's ``usergroups.users.list`` is wired in: a user group approves no one."""
    raise LookupError(f"user group {group} cannot be resolved here")


def log_notice(notice: Notice) -> None:
    log.info("remediation request %s: %s: %s", notice.request.id, notice.event, notice.text)


def build_remediation(
    settings: Settings,
    database: Database,
    clock: Clock,
    *,
    resolve_group: GroupResolver = no_user_groups,
    notify: Notify = log_notice,
) -> Remediation:
    """The service and its runner. ``INCIBOT_ACTIONS_FILE`` is validated here: a bad file raises
    :class:`~bot.remediation.catalogue.CatalogueError` naming ``file:line`` (start-up stops)."""
    catalogue = Catalogue.load(settings.actions_file) if settings.actions_file else Catalogue(actions=())
    service = RemediationService(
        database,
        clock=clock,
        catalogue=catalogue,
        executor=CatalogueExecutor.build(catalogue),
        mode=settings.remediation,
        resolve_group=resolve_group,
    )
    runner = Runner(service, notify)
    service.on_approved = runner.wake
    if settings.remediation == "on":
        log.warning("remediation is on: approved actions run (%d in the catalogue)", len(catalogue.actions))
    return Remediation(service, runner)
