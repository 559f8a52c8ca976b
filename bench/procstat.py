"""What the bot's processes use, read from /proc: CPU time, memory, open connections."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def with_children(pids: list[int]) -> list[int]:
    """The processes and every process they started (`run` starts its workers)."""
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            continue
    return found


def _status_kb(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name):
            return int(line.split()[1])
    return 0


def rss_kb(pid: int) -> int:
    return _status_kb(pid, "VmRSS:")


def peak_rss_kb(pid: int) -> int:
    """The high-water mark of resident memory (VmHWM)."""
    return _status_kb(pid, "VmHWM:")


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def connections(pids: list[int], ports: dict[str, int]) -> dict[str, int]:
    """Established TCP connections from these processes to each named local port."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            inodes |= _socket_inodes(pid)
        except OSError:
            continue
    by_port = {port: name for name, port in ports.items()}
    counts: Counter[str] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            state, inode = parts[3], parts[9]
            if state != "01" or inode not in inodes:  # 01 = ESTABLISHED
                continue
            remote_port = int(parts[2].rsplit(":", 1)[1], 16)
            if remote_port in by_port:
                counts[by_port[remote_port]] += 1
    return {name: counts.get(name, 0) for name in ports}
