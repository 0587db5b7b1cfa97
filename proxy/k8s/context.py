"""What the Kubernetes gateway's sessions share beyond the common services: the cluster clients, the
session registry and the approvals client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..approvals import ApprovalsClient
from ..services import Services
from .upstream import Upstreams

if TYPE_CHECKING:
    from .sessions import SessionRegistry


@dataclass
class K8sContext:
    services: Services
    upstreams: Upstreams
    approvals: ApprovalsClient | None = None
    registry: SessionRegistry = field(init=False)
