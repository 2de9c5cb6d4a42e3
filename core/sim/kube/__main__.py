"""`python -m core.sim.kube`: run the simulated API server with one seeded service until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path

from core.sim.kube.server import SimKubeServer


async def serve(
    kubeconfig: Path,
    namespace: str,
    deployment: str,
    image: str,
    replicas: int,
    pod_ready_delay_s: float = 3.0,
    tls: bool = False,
) -> None:
    server = SimKubeServer(pod_ready_delay_s=pod_ready_delay_s, tls=tls)
    await server.start()
    server.seed_service(
        namespace=namespace,
        deployment=deployment,
        canary_deployment=f"{deployment}-canary",
        image=image,
        replicas=replicas,
        ingress=f"{deployment}-canary",
        httproute=deployment,
    )
    path = server.write_kubeconfig(kubeconfig)
    print(f"simulated Kubernetes API at {server.url}")
    print(f"kubectl --kubeconfig {path} -n {namespace} get deploy", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main() -> None:
    default = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / "deploydeck" / "sim-kubeconfig.yaml"
    parser = argparse.ArgumentParser(prog="python -m core.sim.kube", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, default=default)
    parser.add_argument("--namespace", default="prod")
    parser.add_argument("--deployment", default="web")
    parser.add_argument("--image", default="shop:1.0")
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--pod-ready-delay", type=float, default=3.0, help="seconds until a new pod is ready")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS (kubectl sends tokens only over TLS)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                args.kubeconfig,
                args.namespace,
                args.deployment,
                args.image,
                args.replicas,
                args.pod_ready_delay,
                args.tls,
            )
        )


if __name__ == "__main__":
    main()
