"""The real Kubernetes `Cluster` adapter: traffic strategies, rollout undo, state annotation, lease."""

from core.adapters.kubernetes.api import KubeApi, KubeApiError
from core.adapters.kubernetes.cluster import KubeCluster, rollout_status
from core.adapters.kubernetes.expressible import check_expressible
from core.adapters.kubernetes.lease import LeaseInfo

__all__ = ["KubeApi", "KubeApiError", "KubeCluster", "LeaseInfo", "check_expressible", "rollout_status"]
