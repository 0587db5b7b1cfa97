"""``python -m proxy``: run the Airlock PostgreSQL proxy until SIGTERM (ECS stop) or Ctrl-C."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys

from .server import ProxyServer, StartupError
from .settings import ProxySettings


async def serve(settings: ProxySettings) -> None:
    server = ProxyServer(settings)
    await server.start()
    server.install_signal_handlers()
    # What start-up loaded (boto3's models, pydantic's schemas, pglast) lives as long as the process:
    # keep it out of the collector's full passes, which would otherwise stall every session's relay.
    gc.freeze()
    sys.setswitchinterval(settings.gil_switch_interval)
    await server.stopped.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        stream=sys.stderr)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        run = asyncio.run
    else:
        run = uvloop.run
    try:
        run(serve(ProxySettings()))
    except StartupError as e:
        logging.getLogger("proxy").critical("%s", e)
        sys.exit(2)


if __name__ == "__main__":
    main()
