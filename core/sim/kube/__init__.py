"""A simulated Kubernetes API server that kubectl and the kubernetes client accept.

It aims to be at least as strict as a real kube-apiserver + kube-controller-manager on everything the
adapter and kubectl touch; where they differ, the simulator is wrong. What it does like the real one,
each pinned by tests/test_kube_sim_fidelity.py or tests/test_kubectl_fidelity.py: RollingUpdate within
maxSurge/maxUnavailable and Recreate, pods that take time to start and terminate gracefully, generation
bumps on spec and (Deployments) annotation changes, name and strategy validation (422 Invalid with
causes), immutable selectors, watches that expire with an ERROR event, paginated lists, Events (core/v1
and events.k8s.io/v1), SelfSubjectReview, protobuf bodies from `kubectl create`, rollout undo,
proportional scaling of a resized or paused Deployment, HorizontalPodAutoscalers that fight replica writes,
minReadySeconds, HTTPS with bearer tokens kubectl sends.

GAPS lists what it still does differently; keep it current when one is closed or found.
"""

from core.sim.kube.faults import FaultConfig
from core.sim.kube.server import SimKubeServer

GAPS: tuple[str, ...] = (
    "TLS (tls=True) uses one self-signed certificate made by the openssl command; no client certificates, "
    "and without tls=True kubectl sends no bearer token (as against any plain-HTTP server).",
    "Authorization is RBAC over the stored Roles, ClusterRoles and bindings for every token but the seeded "
    "admin (a token mapped to None, or no tokens at all: never checked, as system:masters); a token's verb "
    "set is a seeded ClusterRole deploydeck-sim:token:sim-user-N on every resource. Token users are "
    "sim-user-N in system:authenticated only; discovery, /version and health URLs are open to anyone "
    "authenticated; no default system: ClusterRoles; aggregation follows matchLabels only; no "
    "impersonation (Impersonate-User headers are ignored).",
    "CustomResourceDefinitions: the storage version's structural schema validates and prunes (types, "
    "required, enum, bounds, pattern, lengths, date formats, additionalProperties); no defaults, CEL "
    "x-kubernetes-validations, anyOf/oneOf checks, conversion or scale subresource; deleting a CRD drops "
    "its objects at once, whatever their finalizers.",
    "Server-side apply (application/apply-patch+yaml) answers 415; no managedFields.",
    "Protobuf request bodies are decoded only for Namespace, ConfigMap, Deployment and SelfSubjectReview "
    "(other kinds and unknown fields: 415); responses are always JSON.",
    "Validation covers names, Deployment/ReplicaSet basics (replicas, selector, template labels, container "
    "name/image, strategy bounds, minReadySeconds, immutable selector), HPA bounds and Lease durations, "
    "not the whole pod spec (ports, probes, volumes, resources are taken as sent).",
    "Defaulting covers containers and init containers' basic fields; probes, volumes, env valueFrom and "
    "security contexts are not defaulted, so such a template can differ from its ReplicaSet after a round "
    "trip through a typed client.",
    "Pods never crash, restart or fail readiness probes; only images in controller.unready_images never get "
    "Ready. minReadySeconds counts from the moment a pod got Ready on the server's Clock.",
    "HorizontalPodAutoscalers have no metrics: they hold their target inside min/max, and scale it to "
    "HpaController.wanted when a test plays the metrics; autoscaling/v1 is not served.",
    "No Endpoints/EndpointSlices and no ingress or gateway controller: traffic weights are read from the "
    "objects (seed.canary_weight).",
    "Watches send no BOOKMARK events and ignore sendInitialEvents/resourceVersionMatch; history keeps the "
    "last 20,000 changes (older resourceVersions are 410, as after an etcd compaction).",
    "Deleting a Namespace removes its objects at once (no Terminating phase, finalizers or not); other "
    "objects with metadata.finalizers wait for them; only Pods are deleted gracefully.",
    "Events aggregate exact repeats into count; no event series or rate limiting.",
    "creationTimestamp and condition times are wall-clock; pod readiness, termination and Event times follow "
    "the server's Clock.",
    "Only the kinds in resources.RESOURCES are served; pods/log, exec, attach and port-forward are not "
    "(kubectl logs answers NotFound).",
)

__all__ = ["GAPS", "FaultConfig", "SimKubeServer"]
