"""Logging, tracing and metrics, set up once for every Airlock Lambda (aws-lambda-powertools).

The service name comes from ``POWERTOOLS_SERVICE_NAME`` (template Globals), defaulting to ``airlock``.
Outside Lambda the tracer disables itself, and metrics are printed as EMF lines to stdout, which is
harmless locally; ``POWERTOOLS_METRICS_DISABLED=true`` silences them.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "airlock")
METRICS_NAMESPACE = "Airlock"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)

__all__ = ["METRICS_NAMESPACE", "SERVICE", "MetricUnit", "logger", "metrics", "tracer"]
