"""What a gateway session may use of its proxy process: settings, the agent-side TLS context, the control
plane, the credential cache, the recording services, the login gate, the metrics, the approvals client,
and whether the process is draining. Sessions depend on this narrow set, never on the server that owns it,
so the server can run sessions of any protocol."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from .admission import LoginGate
from .approvals import ApprovalsClient
from .controlplane import ControlPlaneClient
from .credentials import CredentialCache
from .recording import RecordingServices
from .settings import ProxySettings


@dataclass
class Metrics:
    accepted: int = 0
    refused: int = 0
    terminated: int = 0
    # Backend logins started while authorize decided (proxy/pg/headstart.py), and how many were used.
    head_starts: int = 0
    head_starts_adopted: int = 0

    def render(self, active: int) -> str:
        return (
            "# TYPE airlock_sessions_active gauge\n"
            f"airlock_sessions_active {active}\n"
            "# TYPE airlock_sessions_accepted_total counter\n"
            f"airlock_sessions_accepted_total {self.accepted}\n"
            "# TYPE airlock_sessions_refused_total counter\n"
            f"airlock_sessions_refused_total {self.refused}\n"
            "# TYPE airlock_backend_head_starts_total counter\n"
            f"airlock_backend_head_starts_total {self.head_starts}\n"
            "# TYPE airlock_backend_head_starts_adopted_total counter\n"
            f"airlock_backend_head_starts_adopted_total {self.head_starts_adopted}\n"
        )


@dataclass
class Services:
    settings: ProxySettings
    tls_context: ssl.SSLContext | None
    control_plane: ControlPlaneClient
    credentials: CredentialCache
    recording: RecordingServices
    gate: LoginGate
    metrics: Metrics
    # Held statements, commands and requests are asked for and waited on here (one watcher per process).
    approvals: ApprovalsClient | None = None
    # Set when SIGTERM starts the drain: a login in progress opens nothing more.
    draining: bool = False
