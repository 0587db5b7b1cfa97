"""Which AWS the command line talks to: the running local stack's endpoint, unless one is already set."""

from __future__ import annotations

import json
import os
from pathlib import Path


def use_local_stack(state_dir: Path) -> None:
    """Point boto3 at the running local stack unless the environment already chose an endpoint."""
    if "AWS_ENDPOINT_URL" in os.environ:
        return
    path = state_dir / "stack.json"
    if path.exists():
        for key, value in json.loads(path.read_text()).get("env", {}).items():
            os.environ.setdefault(key, value)
