"""Proxy configuration, parsed once from the environment (AIRLOCK_PROXY_*)."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProxySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIRLOCK_PROXY_", extra="ignore")

    listen_host: str = "127.0.0.1"
    listen_port: int = 5432
    # PEM files for TLS toward agents. Without them the proxy cannot accept passwords (tokens).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # The same as PEM text (ECS injects them from Secrets Manager); used when the paths are unset.
    tls_cert_pem: str | None = None
    tls_key_pem: SecretStr | None = None
    # Name of the authorize Lambda (function name or ARN).
    authorize_function: str = Field(default="airlock-authorize", validation_alias="AIRLOCK_AUTHORIZE_FUNCTION")
    proxy_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}")
    # Seconds live statements get to finish after SIGTERM before sessions are closed.
    drain_seconds: float = 20.0
    # Largest single message accepted from the backend (PostgreSQL's own cap is 1 GiB).
    max_backend_message: int = 256 * 1024 * 1024
    # Largest single message accepted from an agent (a huge Bind or CopyData is legal; cap it anyway).
    max_agent_message: int = 64 * 1024 * 1024
    read_size: int = 256 * 1024
    # Before login a connection's stream buffers at most twice this much of what the agent sent.
    startup_read_limit: int = 16 * 1024
    # Write buffer high-water marks: above one, the opposite side stops being read. Toward the agent,
    # room for a result stream; toward the backend, little more than the server itself would take, so
    # that a backend that stops reading (a lock wait, an error mid-batch) stops the agent promptly.
    write_high_water: int = 1024 * 1024
    backend_write_high_water: int = 64 * 1024
    connect_timeout: float = 10.0
    authorize_timeout: float = 10.0
    # From accept until the agent has sent its password (TLS, start-up, password): one deadline.
    startup_timeout: float = 30.0
    # Connections not yet granted a session (proxy/admission.py): at most this many at once, and at most
    # max_unauthenticated_per_source from one address. More wait (unread) for a place, up to
    # login_wait_seconds; as many may wait as may log in, and beyond that they are refused at once (53300).
    max_unauthenticated: int = Field(default=512, ge=1)
    max_unauthenticated_per_source: int = Field(default=32, ge=1)
    login_wait_seconds: float = Field(default=5.0, ge=0)
    # Refused logins per source address: recorded one by one up to refusal_burst, then refusal_rate per
    # second; beyond that the address's logins are refused before authorize is invoked, and its refusals
    # are counted in one audit line per refusal_window seconds.
    refusal_burst: int = Field(default=30, ge=1)
    refusal_rate: float = Field(default=0.5, gt=0)
    refusal_window: float = Field(default=60.0, gt=0)
    # Re-authorize when this fraction of the grant's lifetime has passed.
    reauthorize_at: float = 0.8
    credential_cache_seconds: float = 60.0
    # How long masking trusts a target's catalog (relations, view definitions) before reading it again;
    # a schema change seen by this proxy makes it read again at once. See proxy/pg/catalog.py.
    catalog_ttl_seconds: float = Field(default=5.0, gt=0)
    health_port: int | None = None
    # --- the Kubernetes API gateway (proxy/k8s): listens only when a port is set; TLS as above.
    k8s_port: int | None = None
    # A session (one agent token on one cluster) ends after this long without a request or a live stream.
    k8s_idle_seconds: float = Field(default=300.0, gt=0)
    # Largest request body read (the API server's own limit is 3 MiB) and largest response the gateway
    # reads whole to mask (a Secret or ConfigMap list); bigger ones are refused, never passed unmasked.
    k8s_max_request_body: int = 8 * 1024 * 1024
    k8s_max_masked_response: int = 128 * 1024 * 1024
    # Longest a held request waits in the gateway for its approval (the HTTP request stays open).
    k8s_hold_seconds: int = Field(default=300, ge=5, le=86400)
    # How long a thread may hold the interpreter lock while another waits for it (sys.setswitchinterval).
    # Recording uploads, heartbeats and authorize calls run boto3 in threads; at CPython's default of
    # 5 ms, one such thread stalls every session's relay for up to 5 ms at each switch.
    gil_switch_interval: float = Field(default=0.001, gt=0, le=0.1)
    # Diagnostics and benchmarks only (measuring what each layer costs): each switch turns a protection
    # off for every session of this process, and the proxy says so loudly at start and per session.
    disable_recording: bool = False
    disable_guardrails: bool = False
    disable_masking: bool = False

    @property
    def disabled_layers(self) -> list[str]:
        return [name for name, off in (("recording", self.disable_recording), ("guardrails", self.disable_guardrails),
                                       ("masking", self.disable_masking)) if off]
