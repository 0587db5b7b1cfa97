"""The sweeper Lambda (scheduled): seal recordings of sessions whose proxy stopped heartbeating."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.config import control_plane_settings
from shared.observability import MetricUnit, logger, metrics, tracer
from shared.recording.audit import PutObject, s3_put_object
from shared.recording.signing import KmsSigner
from shared.recording.store import ChunkStore
from shared.recording.sweeper import SweeperSettings, sweep
from shared.store.sessions import DynamoSessionIndex


@lru_cache(maxsize=1)
def deps() -> tuple[SweeperSettings, DynamoSessionIndex, ChunkStore, KmsSigner, PutObject]:
    cp = control_plane_settings()
    settings = SweeperSettings()
    return (
        settings,
        DynamoSessionIndex(cp),
        ChunkStore(cp.sessions_bucket),
        KmsSigner(cp.signing_key_id, message_type=settings.signing_message_type),
        s3_put_object(cp.sessions_bucket),
    )


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings, index, store, signer, audit = deps()
    stale_after = settings.stale_after_seconds
    if isinstance(event, dict) and "stale_after_seconds" in event:
        # An operator's "sweep now" (or a test) may shorten the silence that counts as dead.
        stale_after = max(float(event["stale_after_seconds"]), 1.0)
    results = sweep(
        index,
        store,
        signer,
        stale_after=timedelta(seconds=stale_after),
        limit=settings.max_sessions,
        audit=audit,
    )
    sealed = [r for r in results if r.outcome == "sealed"]
    failed = [r for r in results if r.outcome == "failed"]
    metrics.add_metric(name="SessionsSealedIncomplete", unit=MetricUnit.Count, value=len(sealed))
    metrics.add_metric(name="SweepFailures", unit=MetricUnit.Count, value=len(failed))
    if results:
        summary = [
            {"session_id": r.session_id, "outcome": r.outcome, "chunks": r.chunks, "defect": r.defect} for r in results
        ]
        logger.warning("sweep finished", extra={"results": summary})
    return {
        "sealed": [r.session_id for r in sealed],
        "already_sealed": [r.session_id for r in results if r.outcome == "already_sealed"],
        "failed": {r.session_id: r.defect for r in failed},
    }
