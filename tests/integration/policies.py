"""Tests that need more than the demo policy push a superset of it for a while, then restore it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from shared.config import ControlPlaneSettings
from tests.integration.stack import AirlockStack, eventually


def put_secret(stack: AirlockStack, name: str, value: dict[str, str]) -> None:
    """A Secrets Manager secret in the stack's local AWS (created or replaced)."""
    client = stack.aws_client("secretsmanager")
    try:
        client.create_secret(Name=name, SecretString=json.dumps(value))
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, SecretString=json.dumps(value))


@contextmanager
def pushed_policy(
    stack: AirlockStack, edit: Callable[[dict[str, Any]], None], tmp: Path, ready: Callable[[], bool]
) -> Iterator[dict[str, Any]]:
    """The demo policy with ``edit`` applied, pushed until the block ends. ``ready()`` says when new
    sessions see it. The authorize Lambda caches the policy (``policy_cache_seconds``), so after the
    demo policy is pushed back the block waits that long: the next test sees the demo policy again."""
    original = stack.state_dir / "policy.yaml"
    policy = yaml.safe_load(original.read_text())
    edit(policy)
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    stack.cli("policy", "push", str(path))
    try:
        assert eventually(ready, timeout=30), "the pushed policy never took effect"
        yield policy
    finally:
        stack.cli("policy", "push", str(original))
        time.sleep(ControlPlaneSettings().policy_cache_seconds + 0.5)
