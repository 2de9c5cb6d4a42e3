"""Before `run` or `check` touches anything: the plan, the world it targets, and what to fix.

Bad input is exit 2 with what to do (DESIGN.md): a plan that does not load, `--speed`
on a real cluster, a kubeconfig that is missing or lacks a context the plan names.
None of these is an "internal error".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml


def say(args: argparse.Namespace, message: str) -> None:
    """A problem on stderr; with --json also one line on stdout, so a pipeline sees why it stopped."""
    print(f"deploydeck: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        line = {
            "ts": datetime.now(UTC).isoformat(),
            "type": "error",
            "phase": "PREFLIGHT",
            "exit": 2,
            "message": message,
        }
        print(json.dumps(line), flush=True)


def plan_for(args: argparse.Namespace) -> Any:
    """The plan to use (simulated when asked), or None after saying what to fix."""
    from core.plan import PlanError, load_plan
    from core.sim_plan import simulated

    try:
        plan = load_plan(args.plan)
    except PlanError as exc:
        say(args, f"invalid plan\n{exc}")
        return None
    sim = bool(getattr(args, "sim", False)) or plan.is_sim
    speed = getattr(args, "speed", None)
    scenario = getattr(args, "scenario", None)
    if not sim and (speed is not None or scenario is not None):
        flag = "--speed" if speed is not None else "--scenario"
        say(
            args,
            f"{flag} works only on the simulated world: add --sim to dry-run {args.plan} there "
            "(a real cluster runs in real time)",
        )
        return None
    if speed == 0.0 and not getattr(args, "headless", False):
        say(args, "--speed max needs --headless (the dashboard needs a clock people can follow)")
        return None
    if scenario is not None:
        from core.sim.scenarios import SCENARIOS

        if scenario not in SCENARIOS:
            say(args, f"unknown scenario '{scenario}'; choose one of: {', '.join(SCENARIOS)}")
            return None
    if sim:
        return simulated(plan)
    if getattr(args, "command", "") == "run":
        problem = kube_config_problem(plan, Path(args.plan))
        if problem is not None:
            say(args, problem)
            return None
    return plan


def _kubeconfig_path(plan: Any) -> Path | None:
    if plan.cluster.kubeconfig:
        return Path(os.path.expanduser(plan.cluster.kubeconfig))
    env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if env:
        return Path(env)
    default = Path.home() / ".kube" / "config"
    return default if default.exists() else None


def _context_line(path: Path, target: str) -> int:
    """The plan line of targets.<target>.context (or of the target), for file:line messages."""
    from core.plan_load import _Located

    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return 1
    return _Located(root).line_of(("targets", target, "context"))


def kube_config_problem(plan: Any, plan_path: Path) -> str | None:
    """What stops the plan reaching its cluster, said with what to do; None when nothing does."""
    path = _kubeconfig_path(plan)
    dry_run = f"or dry-run the plan on the simulated world: deploydeck run {plan_path} --sim --speed 60"
    if path is None:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            return None  # inside a pod: the service account's in-cluster config
        return (
            "no kubeconfig: the plan targets a real cluster (cluster.kind: kube) but neither "
            "cluster.kubeconfig, $KUBECONFIG nor ~/.kube/config exists. Point one of them at your "
            f"cluster's kubeconfig, {dry_run}"
        )
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        return f"kubeconfig {path}: {exc.strerror or exc}; fix cluster.kubeconfig or $KUBECONFIG, {dry_run}"
    except yaml.YAMLError as exc:
        return f"kubeconfig {path} is not YAML ({exc}); fix the file, {dry_run}"
    if not isinstance(config, dict):
        return f"kubeconfig {path} is not a kubeconfig; fix the file, {dry_run}"
    names = [c.get("name") for c in config.get("contexts") or [] if isinstance(c, dict)]
    current = config.get("current-context")
    for name in ("staging", "production"):
        context = getattr(plan.targets, name).context
        if context is None:
            if not current:
                return (
                    f"{plan_path}:{_context_line(plan_path, name)}: targets.{name}.context: none set and "
                    f"{path} has no current-context; set it to one of: {', '.join(map(str, names)) or '(none)'}"
                )
            continue
        if context not in names:
            return (
                f"{plan_path}:{_context_line(plan_path, name)}: targets.{name}.context: '{context}' is not "
                f"a context in {path} (it has: {', '.join(map(str, names)) or 'none'}); "
                f"fix the plan or the kubeconfig (`kubectl config get-contexts`), {dry_run}"
            )
    return None
