"""The in-cluster side of deploydeck: the DeployRun resource, identities, the agent's HTTP endpoints.

What exists today (see the README's "In the cluster"): the CRD generated from the plan models,
the manifests in ``deploy/``, identity normalisation, and an agent that serves health and metrics
and watches DeployRuns. Driving a DeployRun needs the resume machinery (core.rollout) first.
"""
