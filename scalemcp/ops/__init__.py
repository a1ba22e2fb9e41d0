"""Operations: metrics, structured logs, tracing, graceful drain and the worker supervisor.

``metrics`` (Prometheus text at ``/metrics``; ``exposition`` merges and renders snapshots,
``metrics_dir`` shares them between the workers of a node), ``logs`` (JSON or text lines
with request fields; URL redaction), ``tracing`` (optional OpenTelemetry spans), ``drain``
(SIGTERM -> ``/readyz`` 503, streams closed after ``drain_timeout_s``), ``workers`` (the
process supervisor behind ``scalemcp serve``) and ``observe`` (the hooks the server calls).
"""
