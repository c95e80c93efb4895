#!/usr/bin/env python3
"""Per-hop breakdown of keystroke echoes from a `perf record` trace.

Record the bench's `pty-echo` (or any echo run through exec-server) with
syscall and scheduler tracepoints, system-wide:

    E=syscalls:sys_enter_sendto,syscalls:sys_exit_sendto,\
syscalls:sys_enter_recvfrom,syscalls:sys_exit_recvfrom,\
syscalls:sys_enter_write,syscalls:sys_exit_write,\
syscalls:sys_enter_read,syscalls:sys_exit_read,\
syscalls:sys_enter_epoll_wait,syscalls:sys_exit_epoll_wait,\
syscalls:sys_enter_futex,syscalls:sys_exit_futex,\
sched:sched_wakeup,sched:sched_switch,sched:sched_process_fork,sched:sched_process_exec
    perf record -o echo.data -e "$E" -a -- \
        target/release/exec-server-bench --runs 1 pty-echo
    perf script -i echo.data -F comm,pid,tid,cpu,time,event,trace > echo.txt
    scripts/echo-hops.py echo.txt [SERVER_NAME]

For every keystroke echoed by a `cat` whose ancestor is an exec-server
process (the executable name contains SERVER_NAME, default `exec-server`,
and is not the bench itself), it finds the system calls that carried the
byte and prints the median time of each hop:

    client send -> server recv -> server write(pty) -> cat read
    -> cat write -> server read(pty) -> server send -> client recv

plus how often consecutive server hops ran on different threads. Only a
measurement aid: nothing in the build or the tests runs it.
"""

import re
import statistics
import sys
from collections import defaultdict

LINE = re.compile(
    r"^\s*(?P<comm>.+?)\s+(?P<pid>\d+)/(?P<tid>\d+)\s+\[(?P<cpu>\d+)\]\s+"
    r"(?P<time>[\d.]+):\s+(?P<event>[\w:]+):\s*(?P<trace>.*)$"
)


def parse(path):
    events = []
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            events.append(
                (
                    float(m["time"]),
                    int(m["pid"]),
                    int(m["tid"]),
                    int(m["cpu"]),
                    m["event"],
                    m["trace"],
                    m["comm"].strip(),
                )
            )
    events.sort(key=lambda e: e[0])
    return events


def arg(trace, name):
    m = re.search(name + r": (0x[0-9a-f]+)", trace)
    return int(m[1], 16) if m else None


def main():
    path = sys.argv[1]
    server_name = sys.argv[2] if len(sys.argv) > 2 else "exec-server"
    events = parse(path)
    parent = {}
    exe = {}
    for t, pid, tid, cpu, ev, trace, comm in events:
        if ev == "sched:sched_process_fork":
            m = re.search(r"pid=(\d+) child_comm=.* child_pid=(\d+)", trace)
            if m:
                parent[int(m[2])] = int(m[1])
        elif ev == "sched:sched_process_exec":
            m = re.search(r"filename=(\S+)", trace)
            exe[pid] = m[1]
    servers = {
        p for p, f in exe.items() if server_name in f.rsplit("/", 1)[-1] and "bench" not in f
    }
    benches = {p for p, f in exe.items() if "exec-server-bench" in f}

    def ancestor_in(p, group):
        seen = 0
        while p in parent and seen < 50:
            p = parent[p]
            if p in group:
                return p
            seen += 1
        return None

    cats = {p: ancestor_in(p, servers) for p, f in exe.items() if f.endswith("/cat")}
    cats = {p: s for p, s in cats.items() if s}
    print(f"servers: {sorted(servers)}; their cats: {cats}", file=sys.stderr)

    # Syscall durations: pair enter/exit per thread.
    open_call = {}
    calls = []  # (start, end, pid, tid, cpu, name, fd, count, ret)
    for t, pid, tid, cpu, ev, trace, comm in events:
        if ev.startswith("syscalls:sys_enter_"):
            name = ev[len("syscalls:sys_enter_") :]
            open_call[tid] = (t, name, arg(trace, "fd"), arg(trace, "count") or arg(trace, "len"))
        elif ev.startswith("syscalls:sys_exit_"):
            name = ev[len("syscalls:sys_exit_") :]
            start = open_call.pop(tid, None)
            if not start or start[1] != name:
                continue
            ret = int(trace.split()[-1], 16) if trace else 0
            if ret >= 1 << 63:
                ret -= 1 << 64
            calls.append((start[0], t, pid, tid, cpu, name, start[2], start[3], ret))

    for server in sorted(servers):
        my_cats = [c for c, s in cats.items() if s == server]
        if not my_cats:
            continue
        cat = my_cats[0]
        client_pids = benches
        sc = [c for c in calls if c[2] == server]
        cc = [c for c in calls if c[2] == cat]
        kc = [c for c in calls if c[2] in client_pids]
        hops = defaultdict(list)
        threads = defaultdict(int)
        total = 0
        ci = 0
        for read in cc:
            if read[5] != "read" or read[8] != 1:
                continue
            # The cat's write of that byte.
            write = next((c for c in cc if c[0] > read[1] and c[5] == "write"), None)
            if not write:
                continue
            # Server: the last 1-byte write before cat's read returned.
            pty_writes = [c for c in sc if c[5] == "write" and c[7] == 1 and c[1] <= read[1]]
            if not pty_writes:
                continue
            pty_write = pty_writes[-1]
            recvs = [
                c for c in sc if c[5] == "recvfrom" and c[8] > 0 and c[1] <= pty_write[0]
            ]
            if not recvs:
                continue
            recv = recvs[-1]
            sends = [c for c in kc if c[5] == "sendto" and c[0] <= recv[1]]
            if not sends:
                continue
            send = sends[-1]
            pty_read = next(
                (c for c in sc if c[5] == "read" and c[8] == 1 and c[0] >= write[0]), None
            )
            if not pty_read:
                continue
            out = next(
                (c for c in sc if c[5] in ("sendto", "writev") and c[0] >= pty_read[1]), None
            )
            if not out:
                continue
            back = next(
                (c for c in kc if c[5] == "recvfrom" and c[8] > 0 and c[1] >= out[0]), None
            )
            if not back:
                continue
            if send[0] > recv[1] or back[1] - send[0] > 0.05:
                continue
            total += 1
            hops["1 client send -> server recv returns"].append(recv[1] - send[0])
            hops["2 server recv -> write(pty) starts"].append(pty_write[0] - recv[1])
            hops["3 write(pty) starts -> cat read returns"].append(read[1] - pty_write[0])
            hops["4 cat read -> cat write starts"].append(write[0] - read[1])
            hops["5 cat write starts -> server read(pty) returns"].append(pty_read[1] - write[0])
            hops["6 server read(pty) -> send starts"].append(out[0] - pty_read[1])
            hops["7 server send starts -> client recv returns"].append(back[1] - out[0])
            hops["= round trip (client send -> client recv)"].append(back[1] - send[0])
            threads["recv and write(pty) on different threads"] += recv[3] != pty_write[3]
            threads["read(pty) and send on different threads"] += pty_read[3] != out[3]
            threads["recv and write(pty) on different CPUs"] += recv[4] != pty_write[4]
            threads["read(pty) and send on different CPUs"] += pty_read[4] != out[4]
        if not total:
            continue
        print(f"\nserver pid {server} ({exe[server]}), cat {cat}: {total} keystrokes")
        for name in sorted(hops):
            values = hops[name]
            print(
                f"  {name:<48} p50 {statistics.median(values)*1e6:7.1f} µs"
                f"   p90 {sorted(values)[int(len(values)*0.9)]*1e6:7.1f} µs"
            )
        for name, n in threads.items():
            print(f"  {name:<48} {n}/{total}")
        syscalls = defaultdict(int)
        first, last = hops and min(c[0] for c in cc), max(c[1] for c in cc)
        for c in sc:
            if first <= c[0] <= last:
                syscalls[c[5]] += 1
        print(
            "  server syscalls per keystroke: "
            + ", ".join(f"{k} {v/total:.1f}" for k, v in sorted(syscalls.items()))
        )


if __name__ == "__main__":
    main()
