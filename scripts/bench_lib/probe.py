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


def _activity(pids: tuple[int, ...]) -> tuple[int, int] | None:
    """(context switches, minor page faults) of ``pids`` so far: what a wake-up or fresh memory costs in
    a virtual machine does not show in user-space profiles."""
    switches = faults = 0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            ctx = proc.num_ctx_switches()
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except (psutil.Error, OSError):
            return None
        switches += ctx.voluntary + ctx.involuntary
        faults += int(stat.rsplit(b")", 1)[1].split()[7])  # minflt: field 10 of proc(5)
    return switches, faults


def wait_quiet(busy_pct: float = 15.0, window: float = 0.5, longest: float = 60.0) -> float:
    """Wait until the machine is idle: less than ``busy_pct`` % of its CPU time busy (user, system,
    interrupts; not steal) over ``window`` seconds, or ``longest`` seconds gone. Returns the seconds waited.

    A run must not inherit the previous one's work: a recording proxy that relayed 300 MB of results
    has that much to hash and upload after pgbench stops, and the local AWS endpoint as much to take in.
    Left running into the next run, it takes CPU from whichever route that run measures."""
    start = time.monotonic()
    while True:
        before = psutil.cpu_times()
        time.sleep(window)
        after = psutil.cpu_times()
        # Linux counts guest time inside user time already: the total leaves guest and guest_nice out.
        delta = {name: getattr(after, name) - getattr(before, name) for name in after._fields if "guest" not in name}
        busy = sum(delta.get(name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))
        waited = time.monotonic() - start
        if busy < busy_pct / 100 * max(sum(delta.values()), 1e-9) or waited >= longest:
            return waited


@dataclass(frozen=True, slots=True)
class PathProbe:
    pids: tuple[int, ...]
    cpu: float | None
    activity: tuple[int, int] | None
    steal: float
    wall: float

    @classmethod
    def start(cls, port: int | None) -> PathProbe:
        pids = listener_pids(port) if port is not None else ()
        cpu, activity = (_cpu_seconds(pids), _activity(pids)) if pids else (None, None)
        return cls(pids, cpu, activity, psutil.cpu_times().steal, time.monotonic())

    def finish(self) -> PathCost:
        """What the path's processes used since ``start`` (None where there are none) and the steal."""
        wall = time.monotonic() - self.wall
        cpu = _cpu_seconds(self.pids) if self.pids else None
        activity = _activity(self.pids) if self.pids else None
        used = None if cpu is None or self.cpu is None else cpu - self.cpu
        switches = faults = None
        if activity is not None and self.activity is not None:
            switches, faults = activity[0] - self.activity[0], activity[1] - self.activity[1]
        steal = (psutil.cpu_times().steal - self.steal) / max(wall * (psutil.cpu_count() or 1), 1e-9) * 100
        return PathCost(used, switches, faults, steal)


@dataclass(frozen=True, slots=True)
class PathCost:
    cpu_s: float | None  # CPU seconds of the path's processes, all threads
    ctx_switches: int | None
    minor_faults: int | None
    steal_pct: float  # steal as % of all CPU time of the machine
