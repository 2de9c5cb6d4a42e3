"""Automated gates: one module per gate, each an async function (GateContext) -> GateResult."""
