"""ceph_harness: a real single-host Ceph (Debian's ceph-mon, ceph-mgr,
ceph-osd 16.2) for system tests, inside a network namespace of the test's
own: one monitor, one manager and one bluestore OSD on a sparse file, with
small memory settings, all of its configuration, keyrings, sockets, logs and
data under one temporary directory, no systemd.

The daemons run in the foreground (-f) as children of this process, each
held by a pidfd taken at spawn (pids are reused here within minutes), and
are stopped through it; every wait is bounded; stop() removes everything.
Ceph(...) raises CephUnavailable with the reason when it cannot start here
(packages missing, say); the fixture turns that into a skip."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

from vireo_harness import Netns, wait_until, _exited

TOOLS = ["ceph-mon", "ceph-mgr", "ceph-osd", "ceph", "ceph-authtool", "monmaptool"]

CONF = """[global]
fsid = {fsid}
mon host = [v2:{addr}:3300,v1:{addr}:6789]
public addr = {addr}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = {d}/run
admin socket = {d}/run/$cluster-$name.asok
log file = {d}/log/$cluster-$name.log
pid file = {d}/run/$cluster-$name.pid
log to stderr = false
err to stderr = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
auth allow insecure global id reclaim = false
ms async op threads = 1
[client]
keyring = {d}/client.admin.keyring
[mon]
mon data = {d}/mon/$cluster-$id
mon max pg per osd = 1000
[mgr]
mgr data = {d}/mgr/$cluster-$id
mgr initial modules = 
[osd]
osd data = {d}/osd/$cluster-$id
osd objectstore = bluestore
bluestore block create = true
bluestore block size = {osd_bytes}
bluestore block db create = false
bluestore block wal create = false
bluestore cache autotune = false
bluestore cache size = 67108864
osd memory target = 268435456
osd memory cache min = 33554432
osd op num shards = 1
osd op num threads per shard = 2
osd max object name len = 256
osd max object namespace len = 64
"""


class CephUnavailable(Exception):
    """Ceph cannot start on this machine; the message says why."""


class Ceph:
    """One monitor (a), one manager (x), one OSD (0) in netns (a Netns the
    caller made and deletes, or one of its own), listening on address (one
    of netns's: 127.0.0.1, or an address other namespaces reach, as
    cluster_harness.Cluster.add_netns gives). After start: conf (the
    ceph.conf), admin_keyring, monitors (the address), start_seconds,
    and rss_kib() for memory."""

    def __init__(self, netns=None, osd_gib=10, timeout=120, address="127.0.0.1"):
        missing = [t for t in TOOLS if not shutil.which(t)]
        if missing:
            raise CephUnavailable("Ceph tools missing (install ceph-mon ceph-mgr ceph-osd "
                                  "ceph-common): " + ", ".join(missing))
        self.timeout = timeout
        self.owns_netns = netns is None
        self.netns = netns or Netns()
        self.tmp = tempfile.mkdtemp(prefix="vireo-ceph-")
        self.conf = os.path.join(self.tmp, "ceph.conf")
        self.admin_keyring = os.path.join(self.tmp, "client.admin.keyring")
        self.monitors = address
        self.procs = {}  # name -> (Popen, pidfd)
        self.fsid = str(uuid.uuid4())
        t0 = time.monotonic()
        try:
            self._start(osd_gib)
        except BaseException as e:
            logs = self.logs_tail()
            self.stop()
            if isinstance(e, (subprocess.CalledProcessError, subprocess.TimeoutExpired,
                              TimeoutError)):
                raise CephUnavailable(f"Ceph did not start here: {e}\n{logs}") from e
            raise
        self.start_seconds = time.monotonic() - t0

    # -- helpers -------------------------------------------------------------
    def ns(self, *cmd, timeout=60, check=True, input=None):
        """Runs cmd inside the namespace; returns the CompletedProcess."""
        return subprocess.run(["ip", "netns", "exec", self.netns.name, *cmd],
                              capture_output=True, text=True, timeout=timeout,
                              check=check, input=input)

    def ceph(self, *args, timeout=30):
        """The `ceph` CLI as client.admin, JSON output parsed when any."""
        p = self.ns("ceph", "-c", self.conf, "--connect-timeout", "15", "--format", "json",
                    *args, timeout=timeout)
        out = p.stdout.strip()
        return json.loads(out) if out else None

    def rbd(self, *args, timeout=60):
        return self.ns("rbd", "-c", self.conf, *args, timeout=timeout).stdout

    def _spawn(self, name, cmd):
        os.makedirs(os.path.join(self.tmp, "log"), exist_ok=True)
        out = open(os.path.join(self.tmp, "log", name + ".out"), "ab")
        p = subprocess.Popen(["ip", "netns", "exec", self.netns.name, *cmd, "-f",
                              "-c", self.conf], stdout=out, stderr=out,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self.procs[name] = (p, os.pidfd_open(p.pid))

    def _start(self, osd_gib):
        d = self.tmp
        for sub in ("run", "log", "mon", "mgr/ceph-x", "osd/ceph-0"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(CONF.format(fsid=self.fsid, d=d, osd_bytes=osd_gib << 30,
                                addr=self.monitors))
        mon_keyring = os.path.join(d, "mon.keyring")
        run = lambda *c: subprocess.run(c, check=True, capture_output=True, text=True,  # noqa: E731
                                        timeout=30)
        run("ceph-authtool", "--create-keyring", mon_keyring, "--gen-key", "-n", "mon.",
            "--cap", "mon", "allow *")
        run("ceph-authtool", "--create-keyring", self.admin_keyring, "--gen-key", "-n",
            "client.admin", "--cap", "mon", "allow *", "--cap", "osd", "allow *",
            "--cap", "mgr", "allow *", "--cap", "mds", "allow *")
        run("ceph-authtool", mon_keyring, "--import-keyring", self.admin_keyring)
        monmap = os.path.join(d, "monmap")
        run("monmaptool", "--create", "--fsid", self.fsid, "--addv", "a",
            f"[v2:{self.monitors}:3300,v1:{self.monitors}:6789]", monmap)
        run("ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap,
            "--keyring", mon_keyring)
        self._spawn("mon.a", ["ceph-mon", "-i", "a"])
        wait_until(self._mon_up, self.timeout, interval=0.3, what="ceph-mon to answer")

        mgr_key = self.ceph("auth", "get-or-create-key", "mgr.x", "mon", "allow profile mgr",
                            "osd", "allow *", "mds", "allow *")["key"]
        with open(os.path.join(d, "mgr/ceph-x/keyring"), "w") as f:
            f.write(f"[mgr.x]\n\tkey = {mgr_key}\n")
        self._spawn("mgr.x", ["ceph-mgr", "-i", "x"])

        osd_uuid = str(uuid.uuid4())
        osd_key = run("ceph-authtool", "--gen-print-key").stdout.strip()
        secrets = json.dumps({"cephx_secret": osd_key})
        p = self.ns("ceph", "-c", self.conf, "--connect-timeout", "15", "osd", "new", osd_uuid,
                    "-i", "-", input=secrets)
        osd_id = p.stdout.strip()
        if osd_id != "0":
            raise subprocess.CalledProcessError(1, "ceph osd new", output=p.stdout)
        with open(os.path.join(d, "osd/ceph-0/keyring"), "w") as f:
            f.write(f"[osd.0]\n\tkey = {osd_key}\n")
        self.ns("ceph-osd", "-c", self.conf, "-i", "0", "--mkfs", "--key", osd_key,
                "--osd-uuid", osd_uuid, timeout=self.timeout)
        self._spawn("osd.0", ["ceph-osd", "-i", "0"])
        wait_until(self._osd_up, self.timeout, interval=0.5, what="the OSD to be up")
        wait_until(self._mgr_up, self.timeout, interval=0.5, what="the manager to be active")

    def _alive_or_raise(self):
        for name, (p, fd) in self.procs.items():
            if _exited(fd):
                raise TimeoutError(f"{name} exited with {p.poll()}")

    def _mon_up(self):
        self._alive_or_raise()
        p = self.ns("ceph", "-c", self.conf, "--connect-timeout", "3", "mon", "stat",
                    check=False, timeout=20)
        return p.returncode == 0

    def _osd_up(self):
        self._alive_or_raise()
        return (self.ceph("osd", "stat") or {}).get("num_up_osds") == 1

    def _mgr_up(self):
        self._alive_or_raise()
        return (self.ceph("mgr", "stat") or {}).get("available")

    # -- use -----------------------------------------------------------------
    def create_pool(self, name, pgs=8):
        """A replicated pool of size 1 set up for RBD."""
        self.ceph("osd", "pool", "create", name, str(pgs), str(pgs))
        self.ceph("osd", "pool", "set", name, "size", "1", "--yes-i-really-mean-it")
        self.rbd("pool", "init", name)

    def add_user(self, name, pool, path):
        """A cephx client `name` (client.NAME) allowed RBD on pool; its keyring
        is written to path (0600) and its key returned."""
        key = self.ceph("auth", "get-or-create-key", "client." + name, "mon", "profile rbd",
                        "osd", f"profile rbd pool={pool}", "mgr", "profile rbd")["key"]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"[client.{name}]\n\tkey = {key}\n")
        return key

    def rss_kib(self):
        """Resident memory of each daemon, KiB."""
        out = {}
        for name, (p, fd) in self.procs.items():
            if _exited(fd):
                continue
            # The Popen child is `ip netns exec`, which execs the daemon.
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            out[name] = int(line.split()[1])
            except OSError:
                pass
        return out

    def logs_tail(self, lines=20):
        text = []
        logdir = os.path.join(self.tmp, "log")
        if os.path.isdir(logdir):
            for name in sorted(os.listdir(logdir)):
                try:
                    with open(os.path.join(logdir, name), errors="replace") as f:
                        tail = f.readlines()[-lines:]
                except OSError:
                    continue
                text.append(f"--- {name}\n" + "".join(tail))
        return "\n".join(text)

    # -- teardown ------------------------------------------------------------
    def stop(self):
        """Stops every daemon through its pidfd (TERM, then KILL after a
        bounded wait), deletes the namespace when it is ours and removes
        the directory."""
        for name in ("osd.0", "mgr.x", "mon.a"):
            if name not in self.procs:
                continue
            p, fd = self.procs.pop(name)
            if not _exited(fd):
                signal.pidfd_send_signal(fd, signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    if not _exited(fd):
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
                    p.wait(timeout=15)
            else:
                p.wait(timeout=5)
            os.close(fd)
        if self.owns_netns:
            self.netns.delete()
        shutil.rmtree(self.tmp, ignore_errors=True)
