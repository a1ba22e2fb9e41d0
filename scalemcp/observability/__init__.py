"""Observability: metrics, logs and traces, a leaf that imports nothing else of scalemcp.

``metrics`` (the Prometheus series, ``/metrics``), ``metrics_dir`` (how the workers of one
``scalemcp serve`` share them, so that any worker answers for the node), ``logs`` (JSON or
text lines with request fields; URL redaction), ``tracing`` (optional OpenTelemetry spans)
and ``calls`` (the engine's hook around one MCP request). Every layer may import these;
they import nothing of scalemcp but ``scalemcp._version`` (``tests/test_observability_leaf.py``).
"""
