"""Demo contents: namespaces ``default`` and ``prod`` with pods, Secrets, ConfigMaps and Deployments.

The data is fake but shaped to be found by masking: a Luhn-valid test card number (4111 1111 1111 1111,
5555 5555 5555 4444) and AWS's documented example access key pair, in Secret data, ConfigMap values,
container env and pod logs.
"""

from __future__ import annotations

import base64
from typing import Any

from .cluster import Cluster, WriteOptions
from .kinds import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, SECRETS

Obj = dict[str, Any]
TEST_CARD = "4111 1111 1111 1111"
TEST_CARD_2 = "5555555555554444"
AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED_MANAGER = "airlock-seed"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def _container(name: str, image: str, env: list[Obj]) -> Obj:
    return {"name": name, "image": image, "ports": [{"containerPort": 8080, "name": "http"}], "env": env}


def _pod(name: str, app: str, image: str, env: list[Obj]) -> Obj:
    return {"metadata": {"name": name, "labels": {"app": app, "tier": "backend"}},
            "spec": {"containers": [_container(app, image, env)]}}


def _deployment(name: str, image: str, replicas: int, env: list[Obj]) -> Obj:
    return {"metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, "tier": "backend"}},
                                  "spec": {"containers": [_container(name, image, env)]}}}}


def seed(cluster: Cluster) -> None:
    """Create the demo namespaces and objects (idempotent: an existing object is left alone)."""
    options = WriteOptions(manager=SEED_MANAGER)

    def create(rt: Any, namespace: str, body: Obj) -> None:
        if cluster.store.get(rt, namespace, body["metadata"]["name"]) is None:
            cluster.create(rt, namespace, body, options)

    for name in ("default", "kube-system", "kube-public", "prod"):
        create(NAMESPACES, "", {"metadata": {"name": name}})

    card_env: list[Obj] = [
        {"name": "AWS_ACCESS_KEY_ID", "value": AWS_ACCESS_KEY_ID},
        {"name": "AWS_SECRET_ACCESS_KEY",
         "valueFrom": {"secretKeyRef": {"name": "payments-api", "key": "aws-secret-access-key"}}},
        {"name": "TEST_CARD", "valueFrom": {"secretKeyRef": {"name": "payments-api", "key": "card-number"}}},
        {"name": "LOG_LEVEL", "value": "info"},
    ]
    create(SECRETS, "default", {"metadata": {"name": "payments-api", "labels": {"app": "payments-api"}},
                                "type": "Opaque", "data": {
                                    "card-number": _b64(TEST_CARD),
                                    "aws-access-key-id": _b64(AWS_ACCESS_KEY_ID),
                                    "aws-secret-access-key": _b64(AWS_SECRET_ACCESS_KEY),
                                    "db-password": _b64("correct-horse-battery-staple")}})
    create(CONFIGMAPS, "default", {"metadata": {"name": "payments-config", "labels": {"app": "payments-api"}},
                                   "data": {"billing.properties": f"test.card={TEST_CARD_2}\n"
                                                                 f"aws.access_key_id={AWS_ACCESS_KEY_ID}\n",
                                            "region": "eu-west-1", "feature.flags": "checkout-v2=true"}})
    create(DEPLOYMENTS, "default", _deployment("payments-api", "registry.local/payments-api:1.4.2", 2, card_env))
    create(PODS, "default", _pod("payments-api-7d4b9c6f5-x2x7q", "payments-api", "registry.local/payments-api:1.4.2",
                                 card_env))
    create(PODS, "default", _pod("web-5c7d8b9f4-k8r2m", "web", "registry.local/web:2.0.0",
                                 [{"name": "LOG_LEVEL", "value": "info"}]))

    create(SECRETS, "prod", {"metadata": {"name": "stripe-keys", "labels": {"app": "checkout"}}, "type": "Opaque",
                             "data": {"test-card": _b64(TEST_CARD_2),
                                      "aws-access-key-id": _b64(AWS_ACCESS_KEY_ID),
                                      "aws-secret-access-key": _b64(AWS_SECRET_ACCESS_KEY)}})
    create(CONFIGMAPS, "prod", {"metadata": {"name": "checkout-config", "labels": {"app": "checkout"}},
                                "data": {"fallback.card": TEST_CARD, "currency": "EUR"}})
    prod_env: list[Obj] = [{"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "stripe-keys",
                                                                              "key": "aws-access-key-id"}}}]
    create(DEPLOYMENTS, "prod", _deployment("checkout", "registry.local/checkout:3.1.0", 3, prod_env))
    create(PODS, "prod", _pod("checkout-6b8f7d9c4-p9z4t", "checkout", "registry.local/checkout:3.1.0", prod_env))

    logs = {
        ("default", "payments-api-7d4b9c6f5-x2x7q", "payments-api"): [
            "starting payments-api 1.4.2",
            f"using AWS credentials {AWS_ACCESS_KEY_ID}",
            f"charge accepted for card {TEST_CARD} amount=12.00 EUR",
            "health check ok",
        ],
        ("default", "web-5c7d8b9f4-k8r2m", "web"): ["listening on :8080", "GET / 200"],
        ("prod", "checkout-6b8f7d9c4-p9z4t", "checkout"): [
            "starting checkout 3.1.0",
            f"retrying payment with card {TEST_CARD_2}",
        ],
    }
    for (namespace, pod, container), lines in logs.items():
        path = cluster.containers.log_path(namespace, pod, container)
        if path.exists() and path.stat().st_size == 0:
            cluster.containers.append_log(namespace, pod, container, *lines)
