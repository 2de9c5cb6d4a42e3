"""What the production cluster itself says before anything is changed (exit 2 with the reason).

- the running version: stable must run `version.from`; a cluster already on `version.to`, or on
  something else, is refused (a deploy "over" it would report a change that did not happen, and
  its rollback would restore the wrong thing). A deploy of this plan left unfinished (the state
  annotation says so) is exempt: resuming it is how it finishes;
- a paused Deployment would never roll out: refused instead of waiting out the rollout timeout;
- an HPA on stable under the `replicas` strategy, unless the plan says `hpa: suspend`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.adapters.kubernetes.hpa import find_hpa, refusal
from core.adapters.kubernetes.traffic import paused_error

if TYPE_CHECKING:
    from core.adapters.kubernetes.cluster import KubeCluster
    from core.plan import VersionSpec

_DONE = {"complete", "rolled_back", "aborted"}


def image_tag(image: str | None) -> str | None:
    """The tag of an image reference (registry ports and digests understood); None without one."""
    if not image:
        return None
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else None


async def refusals(cluster: KubeCluster, version: VersionSpec) -> list[str]:
    from core.adapters.kubernetes.cluster import _image

    t = cluster.target
    problems: list[str] = []
    stable = await cluster._get("stable")
    state = cluster._state or {}
    resuming = (
        state.get("version") == version.to and state.get("phase") not in _DONE and not state.get("outcome")
    )
    for role, obj in (("stable", stable), ("canary", await cluster._get("canary"))):
        if obj["spec"].get("paused"):
            problems.append(f"{role} {paused_error(obj)}")
    running = _image(stable, cluster._container_hint(stable))
    tag = image_tag(running)
    if not resuming and running is not None:
        if running == version.image or tag == version.to:
            problems.append(
                f"deployment {t.namespace}/{t.deployment} already runs {running} (version.to {version.to}): "
                "nothing to deploy; check version.from/version.to"
            )
        elif tag != version.from_:
            problems.append(
                f"deployment {t.namespace}/{t.deployment} runs {running}, not version.from {version.from_}: "
                "someone changed it since; set version.from to what runs, or find out why"
            )
    if t.strategy == "replicas" and t.hpa == "refuse" and "hpa" not in cluster._own:
        hpa = await find_hpa(cluster)
        if hpa is not None:
            problems.append(refusal(hpa, cluster))
    return problems
