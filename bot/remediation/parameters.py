"""Resolve an action's parameters into a run: typed checks, label defaults, and refusal of injection attempts.

Every value, whatever its declared type allows and wherever it came from (a modal field, slash text, a button
value, an incident label used as a default), must first pass ``refuse_unsafe``: ASCII only after NFKC
normalisation (look-alikes), no control characters or whitespace, no shell or template metacharacters, no leading
``-`` (an option), no ``..`` (a path walk), at most 256 characters. Executors never see a value that failed.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from bot.remediation.catalogue import LABEL_PLACEHOLDER, PLACEHOLDER, ActionSpec, ParamSpec

MAX_VALUE_LENGTH = 256
FORBIDDEN = frozenset(";&|$`()<>\\'\"*?!{}[]~#%^")
_INTEGER = re.compile(r"[0-9]{1,9}")
K8S_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")

ParamValue = str | int


class ParameterError(ValueError):
    """A parameter was refused; ``field`` names it, ``message`` says why (both user-facing)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ResolvedRun:
    """An action with every parameter checked, and the target it acts on. Approvals bind to ``fingerprint()``."""

    action: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    target: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(sorted(self.params.items()))))

    def fingerprint(self) -> str:
        """sha256 hex of the canonical JSON of action, params and target."""
        doc = {"action": self.action, "params": dict(self.params), "target": self.target}
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def refuse_unsafe(name: str, value: str, *, limit: int = MAX_VALUE_LENGTH) -> None:
    """Raise ParameterError when ``value`` could be an injection, whatever the parameter's type would allow."""
    if len(value) > limit:
        raise ParameterError(name, f"is longer than {limit} characters")
    if not value.isascii() or unicodedata.normalize("NFKC", value) != value:
        raise ParameterError(name, "contains non-ASCII characters (look-alike characters are refused)")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ParameterError(name, "contains a control character (a newline, a tab…)")
    if any(c.isspace() for c in value):
        raise ParameterError(name, "contains whitespace")
    bad = next((c for c in value if c in FORBIDDEN), None)
    if bad is not None:
        raise ParameterError(name, f"contains {bad!r}, which is not allowed")
    if value.startswith("-"):
        raise ParameterError(name, "must not start with '-'")
    if ".." in value:
        raise ParameterError(name, "must not contain '..'")


def check_value(name: str, spec: ParamSpec, raw: ParamValue) -> ParamValue:
    """The typed value of ``raw`` for parameter ``name``, or ParameterError."""
    if isinstance(raw, bool):
        raise ParameterError(name, "must be text or a number, not a boolean")
    text = str(raw)
    refuse_unsafe(name, text)
    if not text:
        raise ParameterError(name, "is empty")
    if spec.type == "integer":
        if not _INTEGER.fullmatch(text):
            raise ParameterError(name, f"must be a whole number, not {text!r}")
        number = int(text)
        if spec.min is not None and number < spec.min:
            raise ParameterError(name, f"must be at least {spec.min}, not {number}")
        if spec.max is not None and number > spec.max:
            raise ParameterError(name, f"must be at most {spec.max}, not {number}")
        return number
    if spec.type == "enum":
        if text not in spec.values:
            raise ParameterError(name, f"must be one of {', '.join(spec.values)}, not {text!r}")
        return text
    if len(text) > spec.max_length:
        raise ParameterError(name, f"is longer than {spec.max_length} characters")
    if spec.pattern is not None and not re.fullmatch(spec.pattern, text):
        raise ParameterError(name, f"{text!r} does not match the pattern {spec.pattern}")
    return text


def check_default(name: str, spec: ParamSpec) -> None:
    """At load: a literal default must be a valid value; a label template may only name labels."""
    if spec.default is None:
        return
    if isinstance(spec.default, str) and "{" in spec.default:
        rest = PLACEHOLDER.sub("", spec.default)
        if "{" in rest or "}" in rest:
            raise ParameterError(name, "unbalanced braces in the default")
        for ref in PLACEHOLDER.findall(spec.default):
            if not LABEL_PLACEHOLDER.fullmatch(ref):
                raise ParameterError(name, f"a default may only use {{labels.NAME}}, not {{{ref}}}")
        return
    check_value(name, spec, spec.default)


def _default(name: str, spec: ParamSpec, labels: Mapping[str, str]) -> ParamValue | None:
    default = spec.default
    if not isinstance(default, str) or "{" not in default:
        return default
    missing = [ref for ref in PLACEHOLDER.findall(default) if ref.removeprefix("labels.") not in labels]
    if missing:
        return None
    value = PLACEHOLDER.sub(lambda m: labels[m.group(1).removeprefix("labels.")], default)
    try:
        return check_value(name, spec, value)
    except ParameterError as exc:
        source = ", ".join(f"'{r.removeprefix('labels.')}'" for r in PLACEHOLDER.findall(default))
        raise ParameterError(name, f"the incident's label {source} was refused: {exc.message}") from None


def resolve_run(action: ActionSpec, given: Mapping[str, str], labels: Mapping[str, str]) -> ResolvedRun:
    """Check ``given`` (empty strings count as not given) against ``action``'s parameters, fill the rest from
    defaults (label templates resolved against ``labels``), and compute the target. Raises ParameterError."""
    for key in given:
        if key not in action.params:
            shown = key if key.isascii() and key.isprintable() and len(key) <= 40 else repr(key[:40])
            raise ParameterError(shown, f"is not a parameter of {action.name}")
    params: dict[str, ParamValue] = {}
    for name, spec in action.params.items():
        raw = given.get(name)
        if raw is not None and raw != "":
            params[name] = check_value(name, spec, raw)
            continue
        value = _default(name, spec, labels)
        if value is not None:
            params[name] = value
        elif spec.required:
            hint = f" (its default {spec.default} names a label the incident lacks)" if spec.default else ""
            raise ParameterError(name, f"needs a value{hint}")
    if action.executor.type == "kubernetes":
        kubernetes_object(action, params)
        if action.executor.operation == "scale":
            replicas(action, params)
    return ResolvedRun(action.name, params, target_of(action, params))


def render(template: str, params: Mapping[str, ParamValue]) -> str:
    """``template`` with each ``{param}`` replaced by its value (ParameterError when the parameter is unset)."""

    def value(m: re.Match[str]) -> str:
        if m.group(1) not in params:
            raise ParameterError(m.group(1), "needs a value")
        return str(params[m.group(1)])

    return PLACEHOLDER.sub(value, template)


def render_json(template: object, params: Mapping[str, ParamValue]) -> object:
    """A JSON template with placeholders filled; a string that is exactly one ``{param}`` keeps the value's type."""
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole and whole.group(1) in params:
            return params[whole.group(1)]
        return render(template, params)
    if isinstance(template, dict):
        return {k: render_json(v, params) for k, v in template.items()}
    if isinstance(template, list):
        return [render_json(v, params) for v in template]
    return template


def kubernetes_object(action: ActionSpec, params: Mapping[str, ParamValue]) -> tuple[str, str]:
    """The (namespace, name) a kubernetes action acts on, checked as Kubernetes names."""
    spec = action.executor
    assert spec.type == "kubernetes"
    namespace, name = render(spec.namespace, params), render(spec.name, params)
    if not K8S_NAMESPACE.fullmatch(namespace):
        raise ParameterError(_source(spec.namespace, "namespace"), f"{namespace!r} is not a Kubernetes namespace")
    if not K8S_NAME.fullmatch(name):
        raise ParameterError(_source(spec.name, "name"), f"{name!r} is not a Kubernetes object name")
    return namespace, name


def replicas(action: ActionSpec, params: Mapping[str, ParamValue]) -> int:
    """The replica count of a kubernetes scale action."""
    spec = action.executor
    assert spec.type == "kubernetes" and spec.replicas is not None
    text = render(spec.replicas, params) if isinstance(spec.replicas, str) else str(spec.replicas)
    if not _INTEGER.fullmatch(text):
        raise ParameterError(_source(str(spec.replicas), "replicas"), f"{text!r} is not a replica count")
    return int(text)


def _source(template: str, fallback: str) -> str:
    refs = PLACEHOLDER.findall(template)
    return refs[0] if refs else fallback


def target_of(action: ActionSpec, params: Mapping[str, ParamValue]) -> str:
    """What a run acts on: the action's ``target`` template, else ``kubernetes:NS/deployment/NAME`` (or
    ``/pod/``), the HTTP method and URL, or the program's path."""
    if action.target is not None:
        return render(action.target, params)
    spec = action.executor
    if spec.type == "kubernetes":
        namespace, name = kubernetes_object(action, params)
        kind = "pod" if spec.operation == "delete-pod" else "deployment"
        return f"kubernetes:{namespace}/{kind}/{name}"
    if spec.type == "http":
        return f"{spec.method} {spec.url}"
    return spec.path
