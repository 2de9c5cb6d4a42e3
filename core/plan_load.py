"""Loading a plan from YAML, bounded: nothing in a plan file can exhaust the machine.

Limits (README, Security): a plan file is at most 1 MB; YAML nesting at most
``MAX_DEPTH`` levels; anchors and aliases may expand to at most ``MAX_NODES`` nodes
(a "billion laughs" file is refused at the alias that blows the budget, not expanded);
integers have at most ``MAX_INT_DIGITS`` digits. Every refusal is a :class:`PlanError`
naming file:line, exit 2.

``${VAR}`` takes VAR from the environment and makes its value a secret (registered
with :mod:`core.redact`); ``${VAR:public}``, or VAR listed under the plan's top-level
``public_env:``, marks a value that may be shown;
``${VAR:-default}`` falls back to a default written in the plan (not a secret).
In a command field (``staging.e2e.command`` and the others in ``COMMAND_FIELDS``) a
variable is never spliced into the text: the text keeps ``${VAR}``, and VAR goes to
the child process as an environment variable, so the shell expands it as data.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core import redact
from core.plan import Plan, PlanError

MAX_PLAN_BYTES = 1_000_000
MAX_DEPTH = 40
MAX_NODES = 20_000
MAX_INT_DIGITS = 30

#: fields that run through a shell: values reach them as environment variables
COMMAND_FIELDS = frozenset(
    {
        "staging.e2e.command",
        "migrations.staging_command",
        "migrations.production_command",
        "verification.smoke_command",
        "gates.ci.command",
    }
)

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:public)?(?::-([^}]*))?\}")
_INT_TAG = "tag:yaml.org,2002:int"
_RESOLVER = yaml.resolver.Resolver()


class _Refused(Exception):
    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        self.line = mark.line + 1 if mark is not None else 1
        self.message = message
        super().__init__(message)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting while composing and names the node a constructor chokes on."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self.aliases: list[tuple[yaml.Mark, yaml.Node]] = []

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            self.aliases.append((mark, node))
            return node
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(self.peek_event().start_mark, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:
            raise _Refused(node.start_mark, f"invalid value: {exc}") from None


def _expanded_sizes(root: yaml.Node) -> dict[int, int]:
    """Nodes each subtree stands for once every alias is expanded; refuses a cycle."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise _Refused(node.start_mark, "an alias refers to its own anchor (recursive YAML)")
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                total += size(v)
        on_path.discard(key)
        sizes[key] = total
        return total

    size(root)
    return sizes


def _check_budget(root: yaml.Node, aliases: list[tuple[yaml.Mark, yaml.Node]]) -> None:
    sizes = _expanded_sizes(root)
    if sizes[id(root)] <= MAX_NODES:
        return
    # name the alias that costs the most (in a "billion laughs" file, the last level)
    mark, _ = max(aliases, key=lambda a: (sizes.get(id(a[1]), 0), -a[0].line))
    raise _Refused(mark, f"anchors and aliases expand past {MAX_NODES} nodes; write the values out instead")


def _check_scalars(root: yaml.Node) -> None:
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            digits = sum(c.isdigit() for c in node.value)
            if node.tag == _INT_TAG and digits > MAX_INT_DIGITS:
                raise _Refused(node.start_mark, f"a number with {digits} digits (at most {MAX_INT_DIGITS})")
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack += [k, v]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


class _Located:
    """YAML nodes by field path, so pydantic's error locations map back to lines."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def line_of(self, loc: tuple[int | str, ...]) -> int:
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                nxt = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
                if nxt is None:
                    key_node = next((k for k, _ in node.value if getattr(k, "value", None) == key), None)
                    return key_node.start_mark.line + 1 if key_node is not None else line
                node = nxt
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
            else:
                break
            line = node.start_mark.line + 1
        return line

    def key_line(self, loc: tuple[int | str, ...]) -> int:
        """Line of the key itself (for unknown fields) rather than of its value."""
        if not loc:
            return self.line_of(loc)
        parent = self._node_at(loc[:-1])
        if isinstance(parent, yaml.MappingNode):
            for k, _ in parent.value:
                if getattr(k, "value", None) == loc[-1]:
                    return k.start_mark.line + 1
        return self.line_of(loc)

    def _node_at(self, loc: tuple[int | str, ...]) -> yaml.Node | None:
        node = self.root
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
            else:
                return None
        return node


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(plan)"


class _Interpolation:
    """Fills ``${VAR}`` in place, once per node (an aliased node is shared, and a value
    that itself contains ``${...}`` must never be expanded a second time)."""

    def __init__(
        self, env: dict[str, str], where: str, problems: list[str], public: frozenset[str] = frozenset()
    ) -> None:
        self.env = env
        self.public = public  # the plan's public_env: names whose values may be shown
        self.where = where
        self.problems = problems
        self.secrets: set[str] = set()
        self.command_env: dict[str, str] = {}
        self._done: set[int] = set()

    def walk(self, node: yaml.Node, path: str) -> None:
        if id(node) in self._done:
            return
        self._done.add(id(node))
        if isinstance(node, yaml.ScalarNode) and isinstance(node.value, str) and "${" in node.value:
            self._scalar(node, path)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self.walk(value, f"{path}.{key.value}" if path else str(key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                self.walk(value, f"{path}[{i}]")

    def _scalar(self, node: yaml.ScalarNode, path: str) -> None:
        is_command = path in COMMAND_FIELDS

        def sub(match: re.Match[str]) -> str:
            name, public, default = match.group(1), match.group(2), match.group(3)
            if name in self.env:
                value = self.env[name]
                if not public and name not in self.public:
                    self.secrets.add(value)
                if is_command:
                    self.command_env[name] = value
                    # the shell expands it from the child's environment: data, never code
                    return "${" + name + (f":-{default}" if default is not None else "") + "}"
                return value
            if default is not None:
                return "${" + name + f":-{default}" + "}" if is_command else default
            self.problems.append(
                f"{self.where}:{node.start_mark.line + 1}: {path or '(plan)'}: "
                f"environment variable {name} is not set"
            )
            return ""

        value = _ENV.sub(sub, node.value)
        if value != node.value and node.style is None and not is_command:
            # a plain scalar is typed by what it says once filled in (`weight: ${W}` is a number)
            node.tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))
        node.value = value


def _public_env(root: yaml.MappingNode) -> frozenset[str]:
    """The names listed under a top-level ``public_env:``, read before anything is interpolated.

    Only plain names count here; anything else stays a secret and the model reports it
    (file:line: public_env...) when it validates the list.
    """
    for key, value in root.value:
        if key.value == "public_env" and isinstance(value, yaml.SequenceNode):
            return frozenset(
                item.value
                for item in value.value
                if isinstance(item, yaml.ScalarNode)
                and isinstance(item.value, str)
                and "${" not in item.value
            )
    return frozenset()


def _check_duplicate_keys(node: yaml.Node, where: str, problems: list[str], path: str = "") -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[object] = set()
        for key, value in node.value:
            child = f"{path}.{key.value}" if path else str(key.value)
            if key.value in seen:
                problems.append(f"{where}:{key.start_mark.line + 1}: {child}: duplicate key")
            seen.add(key.value)
            _check_duplicate_keys(value, where, problems, child)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _check_duplicate_keys(value, where, problems, f"{path}[{i}]")


def _compose(text: str, where: str) -> tuple[yaml.Node | None, _BoundedLoader]:
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)
        root = loader.get_single_node()
        if root is not None:
            _check_budget(root, loader.aliases)
            _check_scalars(root)
        return root, loader
    except _Refused as exc:
        raise PlanError([f"{where}:{exc.line}: {exc.message}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise PlanError([f"{where}:{line}: invalid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise PlanError([f"{where}:1: invalid YAML: {exc}"]) from None
    except RecursionError:
        raise PlanError([f"{where}:1: nested too deeply"]) from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_plan(text: str, where: str = "<plan>", env: dict[str, str] | None = None) -> Plan:
    """Parse plan text; raise PlanError naming where:line: field for every problem."""
    env = dict(os.environ) if env is None else env
    if len(text) > MAX_PLAN_BYTES:
        raise PlanError(
            [f"{where}:1: the plan is over {MAX_PLAN_BYTES // 1_000_000} MB; refusing to parse it"]
        )
    root, loader = _compose(text, where)
    if root is None:
        raise PlanError([f"{where}:1: the plan is empty"])
    if not isinstance(root, yaml.MappingNode):
        raise PlanError([f"{where}:{root.start_mark.line + 1}: a plan must be a mapping of fields"])
    problems: list[str] = []
    _check_duplicate_keys(root, where, problems)
    fill = _Interpolation(env, where, problems, _public_env(root))
    fill.walk(root, "")
    # registered before any message can quote them, even when the plan is refused
    redact.register(fill.secrets)
    if problems:
        raise PlanError(problems)
    try:
        data: Any = loader.construct_document(root)
    except _Refused as exc:
        raise PlanError([f"{where}:{exc.line}: {exc.message}"]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise PlanError([f"{where}:{line}: invalid YAML: {exc.problem or exc}"]) from None
    located = _Located(root)
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise PlanError(_problems(exc, where, located)) from None
    except RecursionError:
        raise PlanError([f"{where}:1: nested too deeply"]) from None
    plan._secrets = frozenset(v for v in fill.secrets if v)
    plan._command_env = dict(fill.command_env)
    return plan


def _problems(exc: ValidationError, where: str, located: _Located) -> list[str]:
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic reports union members as extra path parts; keep the user's field path.
        loc = tuple(p for p in loc if p not in {"datetime", "date", "str", "list[str]"})
        if err["type"] == "extra_forbidden":
            problems.append(f"{where}:{located.key_line(loc)}: {_field_path(loc)}: unknown field")
            continue
        if err["type"] == "missing":
            line = located.key_line(loc[:-1])
            problems.append(f"{where}:{line}: {_field_path(loc)}: required field is missing")
            continue
        message = err["msg"].removeprefix("Value error, ")
        # validators point into a list with an "@index: " prefix (pydantic cannot extend loc)
        if (at := re.match(r"@(\d+): ", message)) is not None:
            loc, message = (*loc, int(at.group(1))), message[at.end() :]
        problems.append(f"{where}:{located.line_of(loc)}: {_field_path(loc)}: {message}")
    return problems


def load_plan(path: str | Path, env: dict[str, str] | None = None) -> Plan:
    path = Path(path)
    try:
        if path.is_dir():
            raise PlanError([f"{path}: is a directory, not a plan file"])
        with path.open("rb") as fh:
            raw = fh.read(MAX_PLAN_BYTES + 1)
    except FileNotFoundError:
        raise PlanError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise PlanError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_PLAN_BYTES:
        raise PlanError(
            [f"{path}:1: the plan is over {MAX_PLAN_BYTES // 1_000_000} MB; refusing to parse it"]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError([f"{path}: cannot read: not UTF-8 ({exc.reason} at byte {exc.start})"]) from None
    return parse_plan(text, str(path), env)
