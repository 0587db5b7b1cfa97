"""What a run cost: CPU seconds of the process in the route's path, and the hypervisor's steal.

Throughput on a small shared virtual machine moves with what the host takes from it (steal time, 10-40%
of every CPU in some runs here) more than with anything measured. Two figures do not: the CPU time the
proxy (or pgbouncer) itself spent per transaction, and the share of the run's CPU time the hypervisor
stole, which says how far to trust that run's TPS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


def listener_pids(port: int) -> tuple[int, ...]:
    """The processes listening on TCP ``port`` (the proxy or the pooler a route goes through)."""
    found = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }
    return tuple(sorted(found))


def _cpu_seconds(pids: tuple[int, ...]) -> float | None:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()  # every thread of the process
        except psutil.Error:
            return None
        total += times.user + times.system
    return total


@dataclass(frozen=True, slots=True)
class PathProbe:
    pids: tuple[int, ...]
    cpu: float | None
    steal: float
    wall: float

    @classmethod
    def start(cls, port: int | None) -> PathProbe:
        pids = listener_pids(port) if port is not None else ()
        return cls(pids, _cpu_seconds(pids) if pids else None, psutil.cpu_times().steal, time.monotonic())

    def finish(self) -> tuple[float | None, float]:
        """(CPU seconds the path's processes used, None if there are none; steal as % of all CPU time)."""
        wall = time.monotonic() - self.wall
        cpu = _cpu_seconds(self.pids) if self.pids else None
        used = None if cpu is None or self.cpu is None else cpu - self.cpu
        steal = (psutil.cpu_times().steal - self.steal) / max(wall * (psutil.cpu_count() or 1), 1e-9) * 100
        return used, steal
