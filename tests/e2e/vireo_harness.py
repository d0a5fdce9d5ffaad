"""vireo_harness: run a real vireod inside a network namespace of its own,
with its own state and run directories, and talk to it through the REST API
(http.client over the Unix socket) and the real `vireo` CLI.

Every wait is bounded; every process, namespace and directory made here is
removed again, processes by their PID."""

import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

BUILD = os.environ.get("VIREO_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
VIREOD = os.path.join(BUILD, "src", "daemon", "vireod")
VIREO = os.path.join(BUILD, "cli", "vireo")
TEST_IMAGE = os.environ.get("VIREO_TEST_IMAGE", os.path.join(BUILD, "guest", "default"))
BOOT_MARKER = "vireo-guest: booted"
# Where every vireod of the tests puts its QEMUs' cgroups (its --cgroup-root;
# unset: vireod's default, vireo). A measurement of the tests' CPU sets it
# inside its own cgroup, so that QEMU's CPU is counted with the test's.
CGROUP_ROOT = os.environ.get("VIREO_TEST_CGROUP_ROOT")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


# The longest pause between two polls of wait_until (seconds).
POLL_INTERVAL_MAX = 0.25


def console_detach(proc):
    """Ends a `vireo console` process the test started: Ctrl-] detaches it,
    else it is killed (by its PID)."""
    try:
        proc.stdin.write(b"\x1d")  # Ctrl-] detaches
        proc.stdin.close()
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def race(*fns):
    """Runs every fn from its own thread, released together; their results."""
    barrier = threading.Barrier(len(fns))
    results = [None] * len(fns)
    errors = []

    def run(i, fn):
        try:
            barrier.wait(timeout=30)
            results[i] = fn()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def wait_until(predicate, timeout, interval=0.05, what="condition"):
    """Polls predicate until it returns a truthy value or timeout seconds pass.
    The first pause is interval; each next one is half as long again, up to
    POLL_INTERVAL_MAX (or interval when longer): a quick condition is seen at
    once, and a wait of a minute (a boot, a migration) costs vireod and the
    test a few polls a second, not twenty (make check is CPU-bound)."""
    deadline = time.monotonic() + timeout
    pause = interval
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 1.5, max(interval, POLL_INTERVAL_MAX))


def open_files(pid, under):
    """The files below directory under that process pid has open, as /proc
    names them (a file replaced or removed since ends in " (deleted)")."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(under.rstrip("/") + "/"):
            found.add(target)
    return found


def qemu_processes():
    """(pid, argv) of every process on this machine whose program's name
    contains "qemu" (qemu-system-x86_64, qemu-img, ...; every host of a
    cluster shares the kernel). The HA tests' samplers call this every
    100 ms: /proc/PID/exe is one readlink, about half the CPU of reading
    every process's command line, which is read only for these."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if "qemu" not in os.path.basename(os.readlink(f"/proc/{entry}/exe")):
                continue  # kernel threads have no exe (OSError)
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        found.append((int(entry), argv))
    return found


def ext4_files(disk, tmp_dir, *paths, fmt=None):
    """The contents of paths (None for a missing one) in the ext4 file
    system that fills a disk image (any format qemu-img reads, no partition
    table), read without booting it: a raw copy in tmp_dir (qemu-img
    convert), read with debugfs (e2fsprogs; no mount), then removed. fmt:
    the format QEMU opens the disk with (a VM's disk), so that a file in
    another format fails here as it would fail its VM's boot, not read
    as probed."""
    raw = os.path.join(tmp_dir, "ext4-files.raw")
    try:
        # Inside the try: a convert that fails or times out leaves a partial
        # copy (up to the disk's size) too.
        subprocess.run(["qemu-img", "convert", "-U", *(["-f", fmt] if fmt else []), "-O", "raw",
                        disk, raw], check=True, capture_output=True, timeout=300)
        found = []
        for path in paths:
            p = subprocess.run(["debugfs", "-R", f"cat {path}", raw], capture_output=True,
                               text=True, timeout=60)
            if "Filesystem not open" in p.stderr:  # debugfs exits 0 even then
                raise RuntimeError(f"no ext4 file system in {disk}: {p.stderr.strip()}")
            found.append(None if "not found" in p.stderr else p.stdout)
        return found
    finally:
        if os.path.exists(raw):
            os.unlink(raw)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def _task_states(pid):
    """The state letter of each thread of pid (/proc/PID/task/*/stat); []
    once the process is gone."""
    states = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return states
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                # the name, in parentheses, may itself hold ") "
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            continue  # that thread ended meanwhile
    return states


def all_threads_stopped(pid):
    """Whether no thread of pid runs any more: each is stopped (T, or t when
    traced) or has ended (Z, X), or the process is gone."""
    return all(state in "TtZX" for state in _task_states(pid))


def stop_process(pid, timeout=20, send=None):
    """SIGSTOP to pid, returning once every thread of it has stopped (or the
    process is gone); TimeoutError past timeout seconds. kill() returns when
    the signal is queued on one thread: the other threads of a
    multi-threaded process (etcd, vireod, QEMU) run on until that thread is
    scheduled and stops them all, which under load takes tens of
    milliseconds, so an action right after the kill can still be answered
    by the process thought stopped. Reads /proc only, so pid need not be
    the test's child. send, when given, sends the signal instead (a pidfd's
    sender: OwnProcs.signal). A process that does not stop in time is let
    go again (SIGCONT) before the TimeoutError: no test's cleanup waits on
    a process left stopped."""
    send_stop(pid, send)
    try:
        wait_stopped(pid, timeout)
    except TimeoutError:
        if send is None or not send(pid, signal.SIGCONT):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        raise


def send_stop(pid, send=None):
    """SIGSTOP to pid, through send(pid, sig) when given and it returns
    True (OwnProcs.signal: False for a pid it does not hold), else kill();
    a process already gone is not an error."""
    if send is not None and send(pid, signal.SIGSTOP):
        return
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        pass


def wait_stopped(pid, timeout=20):
    """Waits (bounded) until every thread of pid has stopped (see
    stop_process), after a SIGSTOP already sent."""
    wait_until(lambda: all_threads_stopped(pid), timeout, interval=0.001,
               what=f"every thread of pid {pid} to stop")


def kill_pid(pid, timeout=5.0):
    """SIGTERM, then SIGKILL; bounded."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not pid_alive(pid), timeout, what=f"pid {pid} to exit")
    except (ProcessLookupError, TimeoutError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_until(lambda: not pid_alive(pid), timeout, what=f"pid {pid} to die")


def _exited(pidfd):
    """Whether the process behind pidfd has ended (its pidfd is readable)."""
    return bool(select.select([pidfd], [], [], 0)[0])


def qemu_thread_cgroups(pid):
    """{tid: (name, cpu cgroup)} of a QEMU's threads: the path in the cpu
    hierarchy (v1) or the unified one (v2). vCPU threads are named
    "CPU N/TCG" or "CPU N/KVM" (QEMU's debug-threads)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/cgroup") as f:
                rows = [line.rstrip("\n").split(":", 2) for line in f]
        except OSError:
            continue  # the thread ended
        paths = {c: p for _, cs, p in rows for c in (cs.split(",") if cs else [""])}
        out[int(tid)] = (name, paths.get("cpu", paths.get("")))
    return out


def _rmdir(path):
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


class OwnProcs:
    """The processes a test's cleanup kills (QEMU, dnsmasq, etcd, fence),
    each held by a pidfd taken when it was added, and only when its command
    line names `marker` (the daemon's own directory) then: pids are reused
    within minutes here (pid_max 32768, three pytest runs side by side), so
    a pid from a stale pidfile or from an earlier API answer may already be
    another test's process. Signals go through the pidfd: never to a process
    that merely got the same pid later."""

    def __init__(self, marker):
        self.marker = marker.encode()
        self.fds = {}  # pid -> pidfd

    def add(self, pid):
        """Holds pid when it is a live process of ours; ignores it otherwise."""
        old = self.fds.get(pid)
        if old is not None and not _exited(old):
            return
        try:
            fd = os.pidfd_open(pid)
        except (OSError, ValueError, TypeError):
            return
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                ours = self.marker in f.read()
        except OSError:
            ours = False
        # Still running after the look at /proc: what was read was this
        # process's command line, not a successor's.
        if not ours or _exited(fd):
            os.close(fd)
            return
        if old is not None:
            os.close(old)
        self.fds[pid] = fd

    def __iter__(self):
        """The pids of those still running."""
        return iter([pid for pid, fd in self.fds.items() if not _exited(fd)])

    def __contains__(self, pid):
        return pid in self.fds and not _exited(self.fds[pid])

    def __len__(self):
        return len(list(iter(self)))

    def signal(self, pid, sig):
        """sig to pid through its pidfd; False when pid is not held (or ended)."""
        fd = self.fds.get(pid)
        if fd is None:
            return False
        try:
            signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            return False
        return True

    def kill_all(self, timeout=5.0):
        """SIGTERM, then SIGKILL, to each held process still running; bounded.
        All of them at once, so that the processes that take seconds to
        exit (etcd, QEMU) do so side by side, not one after another."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            running = {pid: fd for pid, fd in self.fds.items() if not _exited(fd)}
            for fd in running.values():
                try:
                    signal.pidfd_send_signal(fd, sig)
                except ProcessLookupError:
                    pass
            try:
                wait_until(lambda: all(_exited(fd) for fd in running.values()), timeout,
                           what=f"pids {sorted(running)} to end ({sig.name})")
                return
            except TimeoutError:
                if sig == signal.SIGKILL:
                    raise

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}

    def __del__(self):
        self.close()


def netns_pids(name):
    """The PIDs of the processes in network namespace `name` (ip netns pids)."""
    p = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return {int(x) for x in p.stdout.split()} if p.returncode == 0 else set()


class Netns:
    """A network namespace of the test's own, with loopback up."""

    def __init__(self, name=None):
        self.name = name or "vireo-t-" + uuid.uuid4().hex[:10]
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)

    def end_processes(self, timeout=10.0):
        """SIGKILL to every process still in the namespace, until none is
        left (bounded). Whatever runs in a test's own namespace is the
        test's: a dnsmasq vireod started just before it died, whose pidfile
        was not written yet, is found only so (`ip netns delete` ends no
        process: they keep the namespace and outlive the test). Each is
        signalled through a pidfd taken while it was in this namespace:
        pids are reused. Returns once each has exited (its pidfd readable),
        not only left the namespace: a process leaves it (exit_task_namespaces)
        before its exit ends, and a large one (a browser) takes a while
        between the two under load."""
        try:
            ns = os.stat(f"/run/netns/{self.name}")
        except OSError:
            return
        deadline = time.monotonic() + timeout
        killed = {}  # pid -> its pidfd, kept until it has exited
        try:
            while True:
                left = []
                for pid in netns_pids(self.name):
                    try:
                        fd = os.pidfd_open(pid)
                    except OSError:
                        continue
                    try:
                        st = os.stat(f"/proc/{pid}/ns/net")
                        if (st.st_dev, st.st_ino) == (ns.st_dev, ns.st_ino):
                            signal.pidfd_send_signal(fd, signal.SIGKILL)
                            left.append(pid)
                            if pid not in killed:
                                killed[pid], fd = fd, -1
                    except OSError:
                        pass
                    finally:
                        if fd >= 0:
                            os.close(fd)
                if not left:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"netns {self.name}: pids {sorted(left)} survive SIGKILL")
                time.sleep(0.05)
            for pid, fd in killed.items():
                wait = max(0.0, deadline - time.monotonic())
                if not select.select([fd], [], [], wait)[0]:
                    raise TimeoutError(f"netns {self.name}: pid {pid} left it but has not exited")
        finally:
            for fd in killed.values():
                os.close(fd)

    def delete(self):
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


def inject(d, op, err):
    """Make the fake driver's next `op` (start, pause, disk_attach, ...) fail
    with errno name `err`, once; d comes from the `faults` fixture."""
    with open(os.path.join(d.fault_dir, op), "w") as f:
        f.write(err + "\n")


def fake_daemon_with_faults(tmp_path):
    """A fake-driver vireod whose driver and store take faults from two
    directories of tmp_path (util/fault-file.h: $VIREO_FAKE_FAULTS,
    $VIREO_TEST_STORE_FAULTS): (daemon, driver's faults, store's faults)."""
    faults, store_faults = tmp_path / "faults", tmp_path / "store-faults"
    faults.mkdir()
    store_faults.mkdir()
    d = Daemon(driver="fake", env={"VIREO_FAKE_FAULTS": str(faults),
                                   "VIREO_TEST_STORE_FAULTS": str(store_faults)})
    return d, faults, store_faults



def slow_qemu_img(only_while=None):
    """A qemu-img script for Daemon.wrap_tool whose `convert -p -f FMT -O FMT
    SRC DST` reads SRC at 1 MiB/s (QEMU's throttle filter), so an import or
    clone lasts long enough to cancel or to kill vireod in the middle; with
    only_while, only while that file (under the wrapper's {dir}) exists.
    Everything else is the real qemu-img."""
    guard = f'[ -e {{dir}}/{only_while} ] && ' if only_while else ""
    return ("#!/bin/sh\n"
            f'if {guard}[ "$1" = convert ] && [ "$2" = -p ] && [ "$3" = -f ] && [ "$5" = -O ]; then\n'
            "    exec {real} convert -p --object throttle-group,id=slow,x-bps-read=1048576 \\\n"
            '        --image-opts -O "$6" \\\n'
            '        "driver=throttle,throttle-group=slow,file.driver=$4,file.file.filename=$7" "$8"\n'
            "fi\n"
            'exec {real} "$@"\n')

class Daemon:
    """One vireod in its own namespace and directories."""

    def __init__(self, driver="qemu", image=True, before_start=None, vireod=None, env=None,
                 popen_extra=None, netns=None, args=()):
        """before_start(state_dir), when given, runs before vireod starts (to
        mount something under the state directory, say). vireod: another
        build's daemon (the ASan one, say); env: more environment for it;
        popen_extra: more subprocess.Popen arguments for its first start
        (pass_fds, say). netns: a Netns the caller made and deletes (a host
        of cluster_harness), instead of one of its own; args: more vireod
        options (--listen ..., say)."""
        self.args = list(args)
        if CGROUP_ROOT and "--cgroup-root" not in self.args:
            self.args += ["--cgroup-root", CGROUP_ROOT]
        self.vireod = vireod or VIREOD
        self.env = env
        self.popen_extra = dict(popen_extra or {})
        self.tmp = tempfile.mkdtemp(prefix="vireo-e2e-")
        # Searchable (not listable) by QEMU's unprivileged user, which writes
        # in a VM's run dir below it (docs/security.md).
        os.chmod(self.tmp, 0o711)
        self.state_dir = os.path.join(self.tmp, "state")
        self.run_dir = os.path.join(self.tmp, "run")
        self.socket = os.path.join(self.run_dir, "vireod.sock")
        self.log_path = os.path.join(self.tmp, "vireod.log")
        self.driver = driver
        os.makedirs(os.path.join(self.state_dir, "images"))
        if image:
            os.symlink(os.path.abspath(TEST_IMAGE), os.path.join(self.state_dir, "images", "default"))
        if before_start:
            before_start(self.state_dir)
        self.owns_netns = netns is None
        self.netns = netns or Netns()
        self.baseline = self.host_state()  # links and nftables before vireod
        self.proc = None
        self.qemu_pids = OwnProcs(self.tmp)  # pids get reused: see OwnProcs
        try:
            self.start()
        except BaseException:
            # No caller gets this object to clean up: what vireod started
            # before it failed (dnsmasq, say) and the namespace go now.
            self.cleanup()
            raise

    # -- process -----------------------------------------------------------
    def start(self, timeout=15):
        """timeout: for vireod to answer (a start that waits on something
        bounded, such as a Ceph that does not answer, takes longer)."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns.name, self.vireod, "--state-dir", self.state_dir,
             "--run-dir", self.run_dir, "--driver", self.driver, "--debug", *self.args],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env} if self.env else None, **self.popen_extra)
        self.popen_extra = {}
        log.close()
        wait_until(self._answers, timeout, what="vireod to answer")

    def wrap_tool(self, name, script, env=None):
        """Restarts vireod with a wrapper first in its PATH for the tool
        `name` (qemu-img, ip, ...): script is a shell script in which {real}
        stands for the real tool and {dir} for the wrapper's directory, which
        is returned. env: more environment for vireod. Later restarts
        (d.start()) keep both."""
        real = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if not real:
            pytest.skip(f"{name} is not installed")
        bindir = os.path.join(self.tmp, f"wrap-{name}")
        os.makedirs(bindir)
        wrapper = os.path.join(bindir, name)
        with open(wrapper, "w") as f:
            f.write(script.replace("{real}", real).replace("{dir}", bindir))
        os.chmod(wrapper, 0o755)
        self.env = {**(self.env or {}), **(env or {}),
                    "PATH": bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin")}
        self.stop()
        self.start()
        return bindir

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"vireod exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return self.request("GET", "/v1/host")[0] == 200
        except OSError:
            return False

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def cleanup(self):
        self.remember_qemu_pids()
        self.remember_dnsmasq_pids()
        self.stop()
        self.remember_qemu_pids()  # pidfiles written since, vireod gone now
        self.qemu_pids.kill_all()
        self.qemu_pids.close()
        survivors = None
        if self.owns_netns:  # what no pidfile named (a dnsmasq just started)
            try:
                self.netns.end_processes()
            except TimeoutError as e:  # the rest goes all the same; raised at the end
                survivors = e
        self.remove_cgroups()
        if self.owns_netns:
            self.netns.delete()
        # A tmpfs a test mounted under the state directory (before_start)
        # would keep its mount point, and so self.tmp, from being removed.
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f]
        for path in reversed(mounts):
            if path.startswith(self.tmp + os.sep):
                subprocess.run(["umount", "-l", path], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        if survivors:
            raise survivors

    def cgroup_dirs(self):
        """This vireod's cgroup directories (one per hierarchy: v2's, or
        v1's cpu, cpuacct and memory), where its QEMUs' cgroups are."""
        root = "vireo"
        if "--cgroup-root" in self.args:
            root = self.args[self.args.index("--cgroup-root") + 1]
        if root == "off":
            return []
        try:
            with open(os.path.join(self.state_dir, "host-id")) as f:
                host_id = f.read().strip()
        except OSError:
            return []
        with open("/proc/mounts") as f:
            mounts = [line.split()[1] for line in f if line.split()[2] in ("cgroup", "cgroup2")]
        return [d for d in (os.path.join(m, root, host_id) for m in mounts) if os.path.isdir(d)]

    def remove_cgroups(self):
        """Its QEMUs' cgroups (empty once they were killed), then its own."""
        for top in self.cgroup_dirs():
            for name in os.listdir(top):
                path = os.path.join(top, name)
                # its vCPU threads' child first (util/cgroup-vcpu.h)
                for d in (os.path.join(path, "vcpus"), path):
                    if os.path.isdir(d):
                        wait_until(lambda: _rmdir(d), 10, interval=0.1, what=f"rmdir {d}")
            _rmdir(top)

    def remember_dnsmasq_pids(self):
        """The dnsmasq of every network as vireod knows it: a dnsmasq just
        started may not have written its pidfile yet (vireod waits for it
        in the background), and it outlives vireod."""
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            status, doc = self._request_once("GET", "/v1/networks", None, None, None, 5)[:2]
        except OSError:
            return
        if status == 200:
            for n in doc.get("networks", []):
                if n.get("dnsmasq_pid"):
                    self.qemu_pids.add(n["dnsmasq_pid"])

    def remember_qemu_pids(self):
        """Every QEMU and dnsmasq this daemon started, from their pidfiles
        (for cleanup: both outlive vireod by design). A pidfile outlives its
        process (qemu.pid stays after the VM stops): OwnProcs.add keeps only
        a process that is still ours."""
        for name in ("etcd.pid", "fence.pid"):  # a cluster's etcd member and
            try:                                # fence process outlive vireod too
                with open(os.path.join(self.run_dir, name)) as f:
                    self.qemu_pids.add(int(f.read().strip()))
            except (OSError, ValueError):
                pass
        for sub, pidfile in (("vms", "qemu.pid"), ("networks", "dnsmasq.pid")):
            top = os.path.join(self.run_dir, sub)
            if not os.path.isdir(top):
                continue
            for entry in os.listdir(top):
                try:
                    with open(os.path.join(top, entry, pidfile)) as f:
                        self.qemu_pids.add(int(f.read().strip()))
                except (OSError, ValueError):
                    pass

    # -- API ---------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, raw=None, timeout=30):
        """One request; a connection refused over vireod's connection limits
        (503 with Retry-After, e.g. while the server has not yet noticed that
        this process closed earlier connections) is retried, bounded."""
        deadline = time.monotonic() + timeout
        while True:
            status, doc, retry_after = self._request_once(method, path, body, headers, raw,
                                                          timeout)
            if status != 503 or retry_after is None or time.monotonic() > deadline:
                return status, doc
            time.sleep(0.1)

    def _request_once(self, method, path, body, headers, raw, timeout):
        conn = UnixHTTPConnection(self.socket, timeout=timeout)
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            try:
                conn.request(method, path, body=data, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                # Refused on its headers (a 400 for a header it may not
                # send, say): vireod answered and closed before the body,
                # which http.client sends apart; its answer is still there.
                pass
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        retry_after = resp.getheader("Retry-After")
        ctype = resp.getheader("Content-Type", "")
        if ctype.startswith("application/json"):
            return resp.status, json.loads(payload), retry_after
        if ctype.startswith("application/octet-stream"):
            return resp.status, payload, retry_after
        return resp.status, payload.decode(errors="replace"), retry_after

    def api(self, method, path, body=None, expect=200):
        status, doc = self.request(method, path, body)
        assert status == expect, f"{method} {path}: {status} {doc}"
        return doc

    def wait_task(self, task, timeout=120):
        def done():
            t = self.api("GET", f"/v1/tasks/{task['id']}")
            return t if t["state"] in ("succeeded", "failed") else None
        return wait_until(done, timeout, what=f"task {task['kind']} {task['id']}")

    def vm(self, name):
        return self.api("GET", f"/v1/vms/{name}")

    def wait_state(self, name, state, timeout=30):
        return wait_until(lambda: self.vm(name)["state"] == state, timeout,
                          what=f"VM {name} to be {state}")

    def console_log(self, name):
        status, text = self.request("GET", f"/v1/vms/{name}/console/log")
        assert status == 200
        return text

    def wait_console(self, name, text, count=1, timeout=120):
        try:
            return wait_until(lambda: self.console_log(name).count(text) >= count, timeout,
                              interval=0.1, what=f"'{text}' x{count} on {name}'s console")
        except TimeoutError as e:
            # What a failure in CI needs to be understood without a rerun:
            # the VM's state, its console's end and vireod's log's end.
            status, vm = self.request("GET", f"/v1/vms/{name}")
            console = self.console_log(name)
            # Without this wait's own polls (and libmicrohttpd's notes on
            # each), which filled the log's end and hid what happened.
            log = "\n".join(line for line in self.log().splitlines()
                             if "/console/log -> " not in line and " debug http: " not in line)
            raise TimeoutError(f"{e}\nVM {name}: {status} {vm}\nconsole (end):\n"
                               f"{console[-1500:]}\nvireod log (end):\n{log[-3000:]}"
                               f"\nload: {os.getloadavg()}") from None

    # -- CLI ---------------------------------------------------------------
    def cli(self, *args, check=True, timeout=180, input=None):
        p = subprocess.run([VIREO, "--socket", self.socket, *args], capture_output=True,
                           text=True, timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"vireo {' '.join(args)} exited {p.returncode}:\n"
                                 f"{p.stdout}\n{p.stderr}")
        return p

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--output", "json").stdout)

    def store_keys(self, prefix):
        """The keys of the SQLite store's documents under prefix, sorted."""
        import sqlite3
        db = sqlite3.connect(os.path.join(self.state_dir, "vireo.db"))
        try:
            rows = db.execute("SELECT key FROM documents WHERE key LIKE ? ORDER BY key",
                              (prefix + "%",)).fetchall()
        finally:
            db.close()
        return [k for (k,) in rows]

    # -- the daemon's namespace --------------------------------------------
    def ns(self, *cmd, check=True, timeout=30, input=None):
        """Runs a command inside the daemon's network namespace."""
        return subprocess.run(["ip", "netns", "exec", self.netns.name, *cmd], input=input,
                              capture_output=True, text=True, check=check, timeout=timeout)

    def host_state(self):
        """The namespace's links (names) and nftables ruleset, to compare."""
        links = json.loads(self.ns("ip", "-j", "link", "show").stdout)
        ruleset = self.ns("nft", "list", "ruleset").stdout
        return sorted(l["ifname"] for l in links), ruleset

    def nic_ip(self, name, index=0, timeout=45):
        """The address DHCP gave a VM's NIC, as vireod reports it: dnsmasq's
        lease, which shows when dnsmasq acks it, before the guest's DHCP client
        has applied it. Before the guest uses its network, see guest_ip."""
        return wait_until(lambda: self.vm(name)["nics"][index].get("ip"), timeout,
                          interval=0.2, what=f"a DHCP address for {name}")

    def guest_ip(self, name, index=0, timeout=45):
        """nic_ip, once the guest itself has the address on eth<index> (and,
        for eth0, its resolver configured): what a test needs before the guest
        sends or receives anything."""
        ip = self.nic_ip(name, index, timeout)
        self.wait_guest_addr(name, ip, f"eth{index}", timeout)
        return ip

    def wait_guest_addr(self, name, ip, dev="eth0", timeout=45):
        """Waits, inside the guest and bounded by its uptime, until dev has ip
        and (eth0) /run/resolv.conf names a nameserver: the image's udhcpc
        script writes that last, after the address and the default route."""
        resolver = " && grep -qs '^nameserver' /run/resolv.conf" if dev == "eth0" else ""
        script = (f"read -r up _ </proc/uptime; end=$((${{up%.*}} + {int(timeout)})); "
                  f"until ip -4 addr show dev {dev} | grep -qF 'inet {ip}/'{resolver}; do "
                  f"read -r up _ </proc/uptime; [ ${{up%.*}} -ge $end ] && break; sleep 0.1; done; "
                  f"ip -4 addr show dev {dev}; cat /run/resolv.conf")
        out = self.guest(name, script, timeout=timeout + 60)
        ok = f"inet {ip}/" in out and (dev != "eth0" or "nameserver" in out)
        assert ok, f"{name} did not configure {ip} on {dev} within {timeout}s (guest time):\n{out}"
        return ip

    # -- helpers -----------------------------------------------------------
    def guest(self, name, command, timeout=60):
        """Runs a shell command in the guest through `vireo console`; returns
        what it printed (between two markers, so echo and prompts are cut)."""
        tag = uuid.uuid4().hex[:8]
        begin, end_mark = f"<B{tag}>", f"<E{tag}>"
        # The markers are printed from octal escapes so that the echoed command
        # line never contains them; only the command's real output does.
        script = (f"printf '\\074B%s\\076\\n' {tag}; {command}; "
                  f"printf '\\n\\074E%s\\076\\n' {tag}\n")
        proc = subprocess.Popen([VIREO, "--socket", self.socket, "console", name],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            proc.stdin.write(script.encode())
            proc.stdin.flush()
            out = b""
            os.set_blocking(proc.stdout.fileno(), False)
            deadline = time.monotonic() + timeout
            while end_mark.encode() not in out and time.monotonic() < deadline:
                chunk = proc.stdout.read()
                if chunk:
                    out += chunk
                elif proc.poll() is not None:
                    break
                else:
                    time.sleep(0.05)
        finally:
            console_detach(proc)
        text = out.decode(errors="replace").replace("\r", "")
        start = text.find(begin)
        end = text.find(end_mark, start + 1)
        if start < 0 or end < 0:
            raise AssertionError(f"no output of {command!r} from {name}:\n{text}")
        return text[start + len(begin):end]

    def task_ok(self, method, path, body=None):
        """Runs an action that answers 202 with a task; waits; asserts success."""
        doc = self.api(method, path, body, expect=202)
        task = self.wait_task(doc["task"])
        assert task["state"] == "succeeded", task
        return doc

    def create_and_boot(self, name, memory="256M", create_args=()):
        self.cli("vm", "create", name, "--memory", memory, *create_args)
        self.cli("vm", "start", name)
        self.wait_console(name, BOOT_MARKER)
        vm = self.vm(name)
        if vm.get("pid"):
            self.qemu_pids.add(vm["pid"])
        return vm
