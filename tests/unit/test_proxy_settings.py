"""The proxy's TLS material can come as files or as PEM text (ECS secrets)."""

from __future__ import annotations

from pathlib import Path

import trustme

from proxy.server import agent_tls_context
from proxy.settings import ProxySettings


def test_tls_from_pem_environment(monkeypatch: object, tmp_path: Path) -> None:
    cert = trustme.CA().issue_cert("localhost")
    settings = ProxySettings(tls_cert_pem=cert.cert_chain_pems[0].bytes().decode(),
                             tls_key_pem=cert.private_key_pem.bytes().decode())
    assert agent_tls_context(settings) is not None
    assert "PRIVATE KEY" not in repr(settings)


def test_no_tls_material_means_no_context() -> None:
    assert agent_tls_context(ProxySettings()) is None
