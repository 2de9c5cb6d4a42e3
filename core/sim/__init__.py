"""The embedded world: simulated cluster, workload and metrics for the demo and tests."""
