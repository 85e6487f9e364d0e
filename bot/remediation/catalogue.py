"""The action catalogue (``INCIBOT_ACTIONS_FILE``): what may be run, with which parameters, by whose approval.

Read once at start and validated whole; every error names ``file:line``. The file::

    kubernetes:                      # only for kubernetes executors; API server and token from here
      api_server: https://kubernetes.default.svc
      token_file: /var/run/secrets/kubernetes.io/serviceaccount/token   # or token_env: NAME
      ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    actions:
      - name: restart-deployment
        description: Rolling restart of a deployment
        executor: {type: kubernetes, operation: rollout-restart, namespace: "{namespace}", name: "{deployment}"}
        params:
          namespace: {type: string, pattern: "[a-z0-9-]{1,63}", default: "{labels.namespace}"}
          deployment: {type: string, pattern: "[a-z0-9-]{1,63}", default: "{labels.service}"}
        applies_to: {alertnames: [KubePodCrashLooping], categories: [application], services: [checkout]}
        risk: medium                 # low | medium | high: at least 0 | 1 | 2 approvals
        approvals: 1                 # default: the risk's minimum
        approvers: [U01AAAAAAAA, S02BBBBBBBB]   # Slack user ids (U…/W…) and user group ids (S…)
        expiry: 15m                  # approvals older than this are void
        timeout: 30s
        idempotent: false

Executor fields and ``target`` may hold ``{param}`` placeholders; parameter defaults may hold ``{labels.NAME}``.

It stays whole: it is the file's one schema (the pydantic models of every section) and the reader that maps each
validation error back to its line; parameter values are checked in :mod:`bot.remediation.parameters`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

RISK_MINIMUM_APPROVALS = {"low": 0, "medium": 1, "high": 2}
NAME = re.compile(r"[a-z][a-z0-9-]{0,62}")  # action names: they travel in button values and slash text
PARAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
LABEL_PLACEHOLDER = re.compile(r"labels\.([A-Za-z_][A-Za-z0-9_]*)")
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")
SLACK_GROUP = re.compile(r"S[A-Z0-9]{2,20}")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
_DURATION = re.compile(r"(\d+)\s*(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
_SECRET_HEADER = re.compile(r"auth|token|secret|key|cookie|password", re.IGNORECASE)
_ALIASES = {"approver_ids": "approvers", "approvals_required": "approvals"}  # field names → the file's keys


class CatalogueError(ValueError):
    """The actions file is invalid; the message starts with ``file:line:``."""


def _duration(value: object) -> object:
    """``30`` (seconds), ``"500ms"``, ``"30s"``, ``"15m"``, ``"2h"`` → timedelta."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return timedelta(seconds=value)
    if isinstance(value, str):
        if m := _DURATION.fullmatch(value.strip()):
            return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
        raise ValueError(f"{value!r} is not a duration like 30s, 15m or 2h")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParamSpec(_Model):
    """A typed parameter. Strings must also match ``pattern`` (whole value) when given; every value, whatever
    its type allows, is refused when it looks like an injection (see ``parameters``)."""

    type: Literal["string", "enum", "integer"]
    description: str = ""
    pattern: str | None = None  # string: a regular expression the whole value must match
    max_length: int = Field(default=128, ge=1, le=256)  # string
    values: tuple[str, ...] = ()  # enum
    min: int | None = Field(default=None, ge=0)  # integer (never negative: a leading '-' is refused)
    max: int | None = Field(default=None, ge=0)  # integer
    default: str | int | None = None  # a literal, or a template with {labels.NAME}
    required: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> ParamSpec:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum parameter needs 'values'")
        if self.type != "enum" and self.values:
            raise ValueError("'values' is only for enum parameters")
        if self.type != "string" and self.pattern is not None:
            raise ValueError("'pattern' is only for string parameters")
        if self.type != "integer" and (self.min is not None or self.max is not None):
            raise ValueError("'min'/'max' are only for integer parameters")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is greater than 'max'")
        return self

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class HttpExecutorSpec(_Model):
    """POST (or PUT) JSON to a fixed URL; the auth header's value is read from an environment variable."""

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://[^\s{}]+$")  # fixed: parameters never reach the URL
    method: Literal["POST", "PUT"] = "POST"
    auth_header: str = Field(default="Authorization", pattern=HEADER_NAME.pattern)
    auth_env: str | None = Field(default=None, pattern=ENV_NAME.pattern)  # the variable holding the secret
    auth_scheme: str | None = Field(default=None, pattern=r"^[A-Za-z]{1,20}$")  # "Bearer" → "Bearer <secret>"
    headers: dict[str, str] = {}  # fixed, non-secret headers
    body: dict[str, Any] = {}  # JSON; string values may hold {param} placeholders

    @field_validator("headers")
    @classmethod
    def _plain_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a header name")
            if _SECRET_HEADER.search(name) or name.lower() == "idempotency-key":
                raise ValueError(f"{name} is set by incibot or holds a secret: use auth_header and auth_env")
        return value

    def templates(self) -> Iterable[tuple[tuple[str | int, ...], str]]:
        yield from _strings_in(self.body, ("body",))


class KubernetesExecutorSpec(_Model):
    """A Kubernetes API call through the official client."""

    type: Literal["kubernetes"]
    operation: Literal["rollout-restart", "scale", "delete-pod"]
    namespace: str
    name: str  # the deployment (rollout-restart, scale) or the pod (delete-pod)
    replicas: str | int | None = None  # scale only: a number or "{param}"

    @model_validator(mode="after")
    def _replicas(self) -> KubernetesExecutorSpec:
        if (self.operation == "scale") != (self.replicas is not None):
            raise ValueError("'replicas' is required for scale, and only for scale")
        return self

    def templates(self) -> Iterable[tuple[tuple[str | int, ...], str]]:
        yield ("namespace",), self.namespace
        yield ("name",), self.name
        if isinstance(self.replicas, str):
            yield ("replicas",), self.replicas


class ProgramExecutorSpec(_Model):
    """A local program run without a shell: ``path`` (absolute) is the allow-list, ``args`` its argv."""

    type: Literal["program"]
    path: str = Field(pattern=r"^/[A-Za-z0-9._/+-]+$")
    args: tuple[str, ...] = ()  # each element a literal or exactly one "{param}"
    max_output: int = Field(default=4000, ge=100, le=100_000)  # characters of stdout/stderr kept

    def templates(self) -> Iterable[tuple[tuple[str | int, ...], str]]:
        for i, arg in enumerate(self.args):
            yield ("args", i), arg


ExecutorSpec = Annotated[HttpExecutorSpec | KubernetesExecutorSpec | ProgramExecutorSpec, Field(discriminator="type")]


class AppliesTo(_Model):
    """Where an action is suggested (any match suffices; names compare case-insensitively)."""

    alertnames: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Approvers:
    users: frozenset[str]  # Slack user ids
    groups: frozenset[str]  # Slack user group ids: their members approve

    def __bool__(self) -> bool:
        return bool(self.users or self.groups)


class ActionSpec(_Model):
    """One catalogue entry."""

    name: str = Field(pattern=f"^{NAME.pattern}$")
    description: str
    executor: ExecutorSpec
    params: dict[str, ParamSpec] = {}
    target: str | None = None  # template; default: derived from the executor (see ``parameters.target_of``)
    applies_to: AppliesTo = AppliesTo()
    risk: Literal["low", "medium", "high"]
    approvals_required: int = Field(ge=0, le=2, alias="approvals")  # default: the risk's minimum
    approver_ids: tuple[str, ...] = Field(default=(), alias="approvers", validate_default=True)
    expiry: Duration = timedelta(minutes=15)
    timeout: Duration = timedelta(seconds=30)
    idempotent: bool = False

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _default_approvals(cls, data: Any) -> Any:
        if isinstance(data, dict) and "approvals" not in data and data.get("risk") in RISK_MINIMUM_APPROVALS:
            return {**data, "approvals": RISK_MINIMUM_APPROVALS[data["risk"]]}
        return data

    @field_validator("approvals_required")
    @classmethod
    def _enough(cls, value: int, info: ValidationInfo) -> int:
        risk = info.data.get("risk")
        if risk is not None and value < RISK_MINIMUM_APPROVALS[risk]:
            raise ValueError(f"risk {risk} needs at least {RISK_MINIMUM_APPROVALS[risk]} approval(s)")
        return value

    @field_validator("approver_ids")
    @classmethod
    def _approvers(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.data.get("approvals_required") and not value:
            raise ValueError("approvers are required when approvals are")
        for ident in value:
            if not (SLACK_USER.fullmatch(ident) or SLACK_GROUP.fullmatch(ident)):
                raise ValueError(f"{ident!r} is neither a Slack user id (U…/W…) nor a user group id (S…)")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(milliseconds=100) <= value <= timedelta(hours=1):
            raise ValueError("must be between 100ms and 1h")
        return value

    @field_validator("expiry")
    @classmethod
    def _expiry(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=1):
            raise ValueError("must be between 1m and 24h")
        return value

    @property
    def approvers(self) -> Approvers:
        return Approvers(
            users=frozenset(i for i in self.approver_ids if SLACK_USER.fullmatch(i)),
            groups=frozenset(i for i in self.approver_ids if SLACK_GROUP.fullmatch(i)),
        )

    def applies(
        self,
        *,
        alertnames: Iterable[str],
        category: str | None,
        services: Iterable[str],
        runbook_actions: Iterable[str],
    ) -> bool:
        """True when the incident's alert names, category, services or its runbooks' ``actions`` name this."""
        return (
            self.name in {a.strip().lower() for a in runbook_actions}
            or bool(_fold(self.applies_to.alertnames) & _fold(alertnames))
            or (category is not None and category.casefold() in _fold(self.applies_to.categories))
            or bool(_fold(self.applies_to.services) & _fold(services))
        )


class KubernetesCluster(_Model):
    """Where the kubernetes executor connects (the token is read at each call: projected tokens rotate)."""

    api_server: str = Field(pattern=r"^https?://\S+$")
    token_env: str | None = Field(default=None, pattern=ENV_NAME.pattern)
    token_file: str | None = None
    ca_file: str | None = None
    verify_tls: bool = True

    @model_validator(mode="after")
    def _token(self) -> KubernetesCluster:
        if (self.token_env is None) == (self.token_file is None):
            raise ValueError("give one of 'token_env' or 'token_file'")
        return self


class _File(_Model):
    kubernetes: KubernetesCluster | None = None
    actions: tuple[ActionSpec, ...]


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The validated catalogue: ``actions`` in file order."""

    actions: tuple[ActionSpec, ...]
    kubernetes: KubernetesCluster | None = None
    source: str = "<memory>"
    digest: str = ""  # sha256 of the file's bytes

    @classmethod
    def load(cls, path: str | Path) -> Catalogue:
        """Read and validate ``path``; raises CatalogueError naming ``file:line`` on the first problem."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CatalogueError(f"{path}: cannot read the actions file: {exc.strerror or exc}") from None
        catalogue = cls.parse(data.decode("utf-8", errors="replace"), source=str(path))
        return cls(catalogue.actions, catalogue.kubernetes, catalogue.source, hashlib.sha256(data).hexdigest())

    @classmethod
    def parse(cls, text: str, *, source: str = "<memory>") -> Catalogue:
        """Validate YAML text (``source`` names it in errors)."""
        tree = _Tree.compose(text, source)
        try:
            parsed = _File.model_validate(tree.value)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = tuple(_ALIASES.get(p, p) if isinstance(p, str) else p for p in err["loc"])
            raise tree.error(loc, str(err["msg"]).removeprefix("Value error, ")) from None
        _check(parsed, tree)
        return cls(parsed.actions, parsed.kubernetes, source, hashlib.sha256(text.encode()).hexdigest())

    def get(self, name: str) -> ActionSpec | None:
        return next((a for a in self.actions if a.name == name), None)

    def matching(
        self,
        labels: Mapping[str, str] | None = None,
        category: str | None = None,
        services: Iterable[str] = (),
        runbook_actions: Iterable[str] = (),
        *,
        alertnames: Iterable[str] = (),
    ) -> list[ActionSpec]:
        """Actions to suggest for an incident: those its runbooks' front matter names first, then catalogue order.
        ``labels`` contributes its ``alertname`` and ``service``."""
        labels = labels or {}
        names = {*alertnames, *([labels["alertname"]] if "alertname" in labels else [])}
        svcs = {*services, *([labels["service"]] if "service" in labels else [])}
        wanted = [a.strip().lower() for a in runbook_actions]
        hits = [
            a
            for a in self.actions
            if a.applies(alertnames=names, category=category, services=svcs, runbook_actions=wanted)
        ]
        order = {name: i for i, name in enumerate(wanted)}
        return sorted(hits, key=lambda a: order.get(a.name, len(order)))


def _fold(values: Iterable[str]) -> set[str]:
    return {v.casefold() for v in values}


def _strings_in(value: object, path: tuple[str | int, ...]) -> Iterable[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings_in(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings_in(v, (*path, i))


def _check(parsed: _File, tree: _Tree) -> None:
    """What pydantic cannot see: duplicate names, placeholders naming real parameters, literal defaults valid."""
    from bot.remediation.parameters import ParameterError, check_default, refuse_unsafe  # the value rules

    seen: dict[str, int] = {}
    for i, action in enumerate(parsed.actions):
        here = ("actions", i)
        if action.name in seen:
            raise tree.error(
                (*here, "name"), f"action {action.name!r} is defined twice (first at line {seen[action.name]})"
            )
        seen[action.name] = tree.line((*here, "name"))
        for pname, spec in action.params.items():
            if not PARAM_NAME.fullmatch(pname):
                raise tree.error((*here, "params", pname), f"parameter name {pname!r} must match {PARAM_NAME.pattern}")
            try:
                check_default(pname, spec)
            except ParameterError as exc:
                raise tree.error((*here, "params", pname, "default"), exc.message) from None
            for j, choice in enumerate(spec.values):
                try:
                    refuse_unsafe(pname, choice)
                except ParameterError as exc:
                    raise tree.error((*here, "params", pname, "values", j), f"{choice!r} {exc.message}") from None
        templates = [(("executor", *p), t) for p, t in action.executor.templates()]
        if action.target is not None:
            templates.append((("target",), action.target))
        for rel, text in templates:
            for ref in PLACEHOLDER.findall(text):
                if ref not in action.params:
                    raise tree.error((*here, *rel), f"placeholder {{{ref}}} names no parameter of {action.name!r}")
                if not action.params[ref].required:
                    raise tree.error((*here, *rel), f"placeholder {{{ref}}} names an optional parameter")
        if action.executor.type == "program":
            for j, arg in enumerate(action.executor.args):
                if PLACEHOLDER.search(arg) and not PLACEHOLDER.fullmatch(arg):
                    raise tree.error((*here, "executor", "args", j), "an argument is a literal or exactly one {param}")
        if action.executor.type == "kubernetes" and parsed.kubernetes is None:
            raise tree.error((*here, "executor"), "a kubernetes executor needs the top-level 'kubernetes' section")


class _Tree:
    """The YAML document as plain values, plus each node's line, looked up by a pydantic-style location."""

    def __init__(self, source: str, value: object, lines: dict[tuple[str | int, ...], int]) -> None:
        self.source, self.value, self._lines = source, value, lines

    @classmethod
    def compose(cls, text: str, source: str) -> _Tree:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            raise CatalogueError(f"{source}:{line}: not valid YAML: {exc.problem or exc}") from None
        finally:
            loader.dispose()
        if node is None:
            raise CatalogueError(f"{source}:1: the actions file is empty")
        lines: dict[tuple[str | int, ...], int] = {}
        value = cls._build(node, (), lines, loader, source)
        if not isinstance(value, dict):
            raise CatalogueError(f"{source}:{node.start_mark.line + 1}: expected a mapping with 'actions'")
        return cls(source, value, lines)

    @classmethod
    def _build(
        cls,
        node: yaml.Node,
        path: tuple[str | int, ...],
        lines: dict[tuple[str | int, ...], int],
        loader: yaml.SafeLoader,
        source: str,
    ) -> object:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            out: dict[str, object] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node)
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise CatalogueError(f"{source}:{key_node.start_mark.line + 1}: keys must be strings")
                key = str(key)
                if key in out:
                    raise CatalogueError(f"{source}:{key_node.start_mark.line + 1}: duplicate key {key!r}")
                out[key] = cls._build(value_node, (*path, key), lines, loader, source)
                lines[(*path, key)] = key_node.start_mark.line + 1  # a nested mapping: the line of its key
            return out
        if isinstance(node, yaml.SequenceNode):
            return [cls._build(item, (*path, i), lines, loader, source) for i, item in enumerate(node.value)]
        return loader.construct_object(node)

    def _found(self, loc: Iterable[object]) -> tuple[str | int, ...]:
        """The longest path along ``loc`` that is in the file (pydantic adds parts that are not: union tags)."""
        path: tuple[str | int, ...] = ()
        for part in loc:
            if isinstance(part, str | int) and (*path, part) in self._lines:
                path = (*path, part)
        return path

    def line(self, loc: Iterable[object]) -> int:
        """The line of the deepest node along ``loc`` (a mapping's: the line of its key)."""
        return self._lines.get(self._found(loc), 1)

    def error(self, loc: Iterable[object], message: str) -> CatalogueError:
        path = self._found(loc)
        field = ".".join(str(p) for p in path) or "file"
        return CatalogueError(f"{self.source}:{self._lines.get(path, 1)}: {field}: {message}")
