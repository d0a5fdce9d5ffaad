#!/usr/bin/env python3
"""fake-qsd.py: a qemu-storage-daemon that dies in the middle of a backup,
for test-qemu-backup.c (VIREO_QEMU_STORAGE_DAEMON points here). It takes the
real one's --chardev socket,...,path=P and --pidfile F, serves QMP on P (the
greeting, qmp_capabilities), then, at the first other command, writes a line
to its log (stderr) and ends as FAKE_QSD_END says: "kill" (SIGKILL to
itself) or "exit" (status 3), with the command unanswered."""
import json
import os
import signal
import socket
import sys

args = sys.argv[1:]
path = pidfile = None
for i, a in enumerate(args):
    if a == "--chardev":
        opts = args[i + 1].replace(",,", "\0").split(",")
        path = next(o[5:] for o in opts if o.startswith("path=")).replace("\0", ",")
    elif a == "--pidfile":
        pidfile = args[i + 1]
with open(pidfile, "w") as f:
    f.write(f"{os.getpid()}\n")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
conn, _ = srv.accept()
conn.sendall(b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 8}}, '
             b'"capabilities": []}}\r\n')
stream = conn.makefile("rb")
for line in stream:
    cmd = json.loads(line)
    if cmd["execute"] == "qmp_capabilities":
        conn.sendall(json.dumps({"return": {}, "id": cmd["id"]}).encode() + b"\r\n")
        continue
    print(f"fake-qsd: dying at {cmd['execute']}", file=sys.stderr, flush=True)
    if os.environ.get("FAKE_QSD_END") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(3)
