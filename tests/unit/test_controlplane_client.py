"""The proxy's Lambda client: made once (at start-up), then shared by every worker thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from proxy.controlplane import ControlPlaneClient
from proxy.invoke import LambdaInvoker


def test_one_client_made_once_and_shared_by_every_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # making a client reads configuration only
    made: list[Any] = []
    original = LambdaInvoker._lambda_client

    def counting(self: LambdaInvoker) -> Any:
        client = original(self)
        made.append(client)
        return client

    monkeypatch.setattr(LambdaInvoker, "_lambda_client", counting)
    cp = ControlPlaneClient("airlock-authorize", timeout=1.0)
    cp.warm()
    threads = [threading.Thread(target=cp.invoker._lambda_client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 9 and all(c is made[0] for c in made)
    assert made[0].meta.service_model.service_name == "lambda"
