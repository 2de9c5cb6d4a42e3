"""A simulated Kubernetes API server that kubectl and the kubernetes client accept."""

from core.sim.kube.faults import FaultConfig
from core.sim.kube.server import SimKubeServer

__all__ = ["FaultConfig", "SimKubeServer"]
