#!/usr/bin/env python3
"""check-service-cycles.py: fails when the daemon's services include each
other in a circle.

Each noun vireod manages (VM, volume and pool, network, image, snapshot,
backup, task) is a service made of the source files named below. A service
may use another only in one direction: this check maps every #include
between files of different services to an edge and fails, naming the files,
when the edges form a cycle. Shared infrastructure (daemon.h, the loop, the
sweep, host-id) and the composition root (main.c) belong to no service.

Usage: check-service-cycles.py SRC_DIR   (exit 0: no cycle)
"""
import os
import re
import sys

# file name (relative to src/) -> service; first matching prefix wins.
SERVICES = [
    ("jobs/tasks.", "task"),
    ("daemon/vm-", "vm"),
    ("daemon/vms.", "vm"),
    ("daemon/console.", "vm"),
    ("daemon/storage", "volume"),
    ("daemon/volume", "volume"),
    ("daemon/pool", "volume"),
    ("daemon/network", "network"),
    ("daemon/image", "image"),
    ("daemon/snapshot", "snapshot"),
    ("daemon/backup", "backup"),
    ("daemon/schedule", "schedule"),
    ("daemon/hosts.", "host"),
    ("daemon/host-facts.", "host"),
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def service_of(rel):
    for prefix, name in SERVICES:
        if rel.startswith(prefix):
            return name
    return None


def edges(src):
    found = {}  # (from, to) -> [(file, header)]
    for sub in ("daemon", "jobs"):
        for name in sorted(os.listdir(os.path.join(src, sub))):
            if not name.endswith((".c", ".h")):
                continue
            rel = f"{sub}/{name}"
            frm = service_of(rel)
            if frm is None:
                continue
            with open(os.path.join(src, rel), encoding="utf-8") as f:
                for header in INCLUDE.findall(f.read()):
                    to = service_of(header)
                    if to is not None and to != frm:
                        found.setdefault((frm, to), []).append((rel, header))
    return found


def find_cycle(graph):
    """A list of nodes forming a cycle, or None (iterative-enough DFS)."""
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    found = edges(sys.argv[1])
    graph = {}
    for frm, to in found:
        graph.setdefault(frm, set()).add(to)
    cycle = find_cycle(graph)
    if cycle is None:
        order = ", ".join(f"{a} -> {b}" for a, b in sorted(found))
        print(f"services without cycles: {order}")
        return 0
    print("services include each other in a circle: " + " -> ".join(cycle), file=sys.stderr)
    for a, b in zip(cycle, cycle[1:]):
        for rel, header in found[(a, b)]:
            print(f"  {rel} includes {header} ({a} uses {b})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
