"""`deploydeck init`: a commented plan for an existing service, from what its cluster shows.

Read-only: GETs the Deployment, its Services, ingress-nginx Ingresses and Gateway API HTTPRoutes
that route to them, and its HorizontalPodAutoscaler. Everything inferred is written with a
`# guess:` comment saying what it was inferred from; what cannot be inferred is `# TODO:`.
Without a cluster it writes the same template with every value a TODO or a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.ports import ClusterError

#: containers that are never the application (service-mesh and logging sidecars)
SIDECARS = frozenset({"istio-proxy", "linkerd-proxy", "envoy", "envoy-sidecar", "fluent-bit", "vault-agent"})


@dataclass
class Discovery:
    """What the cluster says about one Deployment. Each guess carries the reason for it."""

    namespace: str
    deployment: str
    image: str = ""
    container: str | None = None
    replicas: int | None = None
    service: str | None = None
    port: int | None = None
    strategy: str = "replicas"
    ingress: str | None = None
    httproute: str | None = None
    ready_path: str | None = None
    live_path: str | None = None
    probe_port: int | None = None
    hpa: str | None = None
    why: dict[str, str] = field(default_factory=dict)  # field → what it was inferred from

    @property
    def current_tag(self) -> str:
        tail = self.image.rsplit("/", 1)[-1]
        return tail.split(":", 1)[1].split("@", 1)[0] if ":" in tail else "latest"


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pick_container(containers: list[dict[str, Any]], deployment: str, d: Discovery) -> dict[str, Any]:
    if len(containers) == 1:
        d.container = None  # the only one: the plan need not name it
        return containers[0]
    named = [c for c in containers if c.get("name") == deployment]
    apps = named or [c for c in containers if c.get("name") not in SIDECARS] or containers
    chosen = apps[0]
    d.container = str(chosen.get("name"))
    others = ", ".join(str(c.get("name")) for c in containers if c is not chosen)
    d.why["container"] = (
        f"named like the Deployment (others: {others})" if named else f"first non-sidecar (others: {others})"
    )
    return chosen


def _probe(container: dict[str, Any], kind: str) -> tuple[str | None, int | None]:
    get = (container.get(kind) or {}).get("httpGet") or {}
    port = get.get("port")
    return get.get("path"), port if isinstance(port, int) else None


async def _list(api: Any, path: str) -> list[dict[str, Any]]:
    """Items of a collection; a kind the cluster does not serve (404) is an empty list."""
    from core.adapters.kubernetes.api import KubeApiError

    try:
        return list((await api.request("GET", path)).get("items") or [])
    except KubeApiError as exc:
        if exc.status == 404:
            return []
        raise


async def discover(api: Any, namespace: str, deployment: str) -> Discovery:
    from core.adapters.kubernetes.api import KubeApiError

    d = Discovery(namespace=namespace, deployment=deployment)
    try:
        obj = await api.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}")
    except KubeApiError as exc:
        if exc.status == 404:
            raise ClusterError(f"no Deployment {namespace}/{deployment} in this cluster") from None
        raise
    template = obj.get("spec", {}).get("template", {})
    labels = dict(template.get("metadata", {}).get("labels") or {})
    container = _pick_container(list(template.get("spec", {}).get("containers") or []), deployment, d)
    d.image = str(container.get("image", ""))
    d.replicas = obj.get("spec", {}).get("replicas")
    d.ready_path, d.probe_port = _probe(container, "readinessProbe")
    d.live_path, live_port = _probe(container, "livenessProbe")
    d.probe_port = d.probe_port or live_port
    if d.ready_path:
        d.why["health"] = "the container's readiness/liveness probes"

    services = [
        s
        for s in await _list(api, f"/api/v1/namespaces/{namespace}/services")
        if _matches(dict(s.get("spec", {}).get("selector") or {}), labels)
    ]
    if services:
        services.sort(key=lambda s: (s["metadata"]["name"] != deployment, s["metadata"]["name"]))
        d.service = services[0]["metadata"]["name"]
        ports = services[0].get("spec", {}).get("ports") or [{}]
        d.port = ports[0].get("port")
        d.why["service"] = f"its selector matches the pods' labels ({len(services)} Service(s) do)"
    names = {s["metadata"]["name"] for s in services}

    for route in await _list(api, f"/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes"):
        refs = [
            r.get("name")
            for rule in route.get("spec", {}).get("rules") or []
            for r in rule.get("backendRefs") or []
        ]
        if names & set(refs):
            d.strategy, d.httproute = "gateway", route["metadata"]["name"]
            d.why["strategy"] = f"HTTPRoute {d.httproute} routes to the Service: weights move there"
            break
    if d.httproute is None:
        for ing in await _list(api, f"/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses"):
            meta, spec = ing.get("metadata", {}), ing.get("spec", {})
            annotations = meta.get("annotations") or {}
            nginx = (
                spec.get("ingressClassName") == "nginx"
                or annotations.get("kubernetes.io/ingress.class") == "nginx"
            )
            backends = [
                p.get("backend", {}).get("service", {}).get("name")
                for rule in spec.get("rules") or []
                for p in (rule.get("http") or {}).get("paths") or []
            ]
            if nginx and annotations.get("nginx.ingress.kubernetes.io/canary") == "true":
                d.strategy, d.ingress = "nginx", meta["name"]
                d.why["strategy"] = f"Ingress {d.ingress} is an ingress-nginx canary Ingress"
                break
            if nginx and names & set(backends):
                d.why["strategy"] = (
                    f"Ingress {meta['name']} (ingress-nginx) routes to the Service; for weights by ingress, "
                    "add a canary Ingress and set strategy: nginx"
                )
    for hpa in await _list(api, f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers"):
        ref = hpa.get("spec", {}).get("scaleTargetRef") or {}
        if ref.get("kind") == "Deployment" and ref.get("name") == deployment:
            d.hpa = hpa["metadata"]["name"]
            low, high = hpa["spec"].get("minReplicas", 1), hpa["spec"].get("maxReplicas")
            d.why["replicas"] = f"HPA {d.hpa} scales it {low}..{high}: the live size is used"
            d.replicas = None
    if d.replicas and "replicas" not in d.why:
        d.why["replicas"] = "the Deployment's spec.replicas"
    return d


def _line(key: str, value: object, comment: str = "", indent: int = 0) -> str:
    text = " " * indent + f"{key}: {value}"
    return f"{text:<43} # {comment}" if comment else text  # a space before #: YAML needs it


def render_plan(
    d: Discovery | None,
    *,
    service: str,
    namespace: str,
    deployment: str,
    context: str | None,
    image: str | None,
) -> str:
    """The plan as commented YAML. `d` None: no cluster was read; everything is a default or TODO."""
    guess = lambda key: f"guess: {d.why[key]}" if d is not None and key in d.why else ""  # noqa: E731
    current = d.current_tag if d is not None and d.image else "1.0.0"
    new_image = image or (
        d.image.rsplit(":", 1)[0] + ":TODO"
        if d is not None and ":" in d.image
        else "registry.example.com/TODO:TODO"
    )
    new_tag = new_image.rsplit(":", 1)[-1] if ":" in new_image.rsplit("/", 1)[-1] else "TODO"
    source = (
        f"read from Deployment {namespace}/{deployment}" + (f" (context {context})" if context else "")
        if d is not None
        else "no cluster read: every value is a default or a TODO"
    )
    out = [
        f"# deploydeck plan for {service}: written by `deploydeck init`, {source}.",
        "# `# guess:` marks what was inferred and from what; `# TODO:` what only you know.",
        "#   deploydeck check THIS.yaml --sim      # its gates against the simulated world",
        "#   deploydeck run THIS.yaml --sim --headless --speed max --approve rollback-plan --approve dashboards-reviewed",
        "",
        _line("service", service),
        "version:",
        _line(
            "from",
            f'"{current}"',
            "guess: the running image's tag" if d is not None else "TODO: the running version",
            2,
        ),
        _line("to", f'"{new_tag}"', "" if image else "TODO: the version to ship", 2),
        _line("image", new_image, "" if image else "TODO: the image to ship", 2),
        "change:",
        _line("id", "CHG-TODO", "TODO: your change record", 2),
        _line("class", "standard", "standard | normal | emergency | major (POL-012)", 2),
        _line("author", "TODO", "TODO: who wrote the change (cannot approve it)", 2),
        _line("repo", f"{namespace}/{deployment}", "TODO: owner/name on the code host", 2),
        _line("commit", '"0000000"', "TODO: the commit being shipped", 2),
        _line("pull_request", 1, "TODO: its pull request", 2),
        "cluster:",
        _line("kind", "kube", "kube: a real cluster; --sim runs it on the simulated world", 2),
        "targets:",
    ]
    for role, ns in (("staging", f"{namespace}-staging"), ("production", namespace)):
        out.append(f"  {role}:")
        if context:
            out.append(
                _line(
                    "context",
                    context,
                    "guess: the context init read" if role == "production" else "TODO: staging's context",
                    4,
                )
            )
        out.append(_line("namespace", ns, "guess: <namespace>-staging" if role == "staging" else "", 4))
        out.append(_line("deployment", deployment, "", 4))
        if d is None:
            continue
        if d.container:
            out.append(_line("container", d.container, guess("container"), 4))
        if d.service and d.service != deployment:
            out.append(_line("service", d.service, guess("service"), 4))
        out.append(
            _line(
                "strategy", d.strategy, guess("strategy") or "guess: no Ingress or HTTPRoute routes to it", 4
            )
        )
        if d.ingress:
            out.append(_line("ingress", d.ingress, "", 4))
        if d.httproute:
            out.append(_line("httproute", d.httproute, "", 4))
        if d.strategy == "replicas" and d.replicas:
            out.append(_line("replicas", d.replicas, guess("replicas"), 4))
        if d.ready_path and d.service:
            host = f"http://{d.service}.{ns}.svc" + (f":{d.port}" if d.port and d.port != 80 else "")
            live = d.live_path or d.ready_path
            out += [
                _line("health", "", guess("health"), 4).rstrip(),
                _line("live", f"{host}{live}", "", 6),
                _line("ready", f"{host}{d.ready_path}", "", 6),
            ]
    out += [
        "gates:",
        _line(
            "error_budget", "{objective: 99.0}", "TODO: the service's SLO (the default 99.9 % is a guess)", 2
        ),
        "analysis:",
        "  queries:                                  # guess: the usual http_requests_total and histogram names;",
        "                                            # $service $namespace $version $window are filled in",
        '    requests: sum(rate(http_requests_total{namespace="$namespace",version="$version"}[$window]))',
        '    error_rate: sum(rate(http_requests_total{namespace="$namespace",version="$version",code=~"5.."}[$window])) / sum(rate(http_requests_total{namespace="$namespace",version="$version"}[$window]))',
        '    latency_quantile: histogram_quantile($quantile, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="$namespace",version="$version"}[$window])))',
    ]
    if d is not None and d.hpa:
        out.append(f"# note: HPA {d.hpa} scales {deployment}; the replicas strategy follows the live size")
    return "\n".join(out) + "\n"
