"""benchlib: what the benchmarks in bench/ share: the vireod they measure (the
test harness's, cleaning up after itself), plain QEMU with its console on
pipes, small number formatting, and the facts about the machine a result
table is headed with. Imported by the bench scripts, not run itself."""

import ctypes
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import vireo_harness as h  # noqa: E402

MiB = 1 << 20
TASK_POLL_S = 0.002
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


class no_interrupts:
    """Cleanup runs to the end even when Ctrl-C is pressed again."""

    def __enter__(self):
        self.old = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.old)


def ratio(a, b):
    return f"{a / b:.2f}" if a == a and b == b and b else "-"


def allocated(path):
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return None


def proc_cpu_s(pid):
    """utime+stime of a process in seconds, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError, TypeError):
        return None


def mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


class LogTail:
    """Reads what is appended to a file that may not exist yet and may be
    rotated (vireod renames console.log to console.log.1 at ~1 MiB)."""

    def __init__(self, path):
        self.path = path
        self.ino, self.offset = None, 0
        try:
            st = os.stat(path)
            self.ino, self.offset = st.st_ino, st.st_size
        except FileNotFoundError:
            pass

    def _read(self, path, offset):
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""

    def read(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return b""
        data = b""
        if self.ino is not None and st.st_ino != self.ino:
            data = self._read(self.path + ".1", self.offset)  # the rest of the old one
            self.offset = 0
        elif st.st_size < self.offset:
            self.offset = 0
        self.ino = st.st_ino
        new = self._read(self.path, self.offset)
        self.offset += len(new)
        return data + new


def run(argv, timeout=120):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


class BenchDaemon(h.Daemon):
    """The harness's Daemon, but one that cleans up after itself when it fails
    to come up (the harness leaves that to the test fixture)."""

    def __init__(self, *args, **kwargs):
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            self.cleanup()
            raise

    def cleanup(self):
        if hasattr(self, "netns") and hasattr(self, "proc"):
            super().cleanup()
        elif hasattr(self, "tmp"):  # failed before the namespace or the process existed
            if hasattr(self, "netns"):
                self.netns.delete()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def wait_task_fast(self, task, timeout):
        """Polls the task every TASK_POLL_S; returns (task, monotonic time it
        was first seen finished)."""
        deadline = time.monotonic() + timeout
        while True:
            cur = self.api("GET", f"/v1/tasks/{task['id']}")
            if cur["state"] in ("succeeded", "failed"):
                return cur, time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task['kind']} {task['target']} still {cur['state']} after {timeout}s")
            time.sleep(TASK_POLL_S)

    def task_ok_timed(self, method, path, body, timeout=300):
        t0 = time.monotonic()
        doc = self.api(method, path, body, expect=202)
        task, t1 = self.wait_task_fast(doc["task"], timeout)
        if task["state"] != "succeeded":
            raise RuntimeError(f"{method} {path}: task failed: {task.get('error')}")
        return doc, t1 - t0


def netns_preexec(ns_name, cgroup_procs=()):
    """Enters netns ns_name and joins the cgroups whose cgroup.procs files
    are given (plain_cgroup's), in the child before exec."""
    libc = ctypes.CDLL(None, use_errno=True)

    def enter():
        fd = os.open(f"/run/netns/{ns_name}", os.O_RDONLY | os.O_CLOEXEC)
        if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            os._exit(127)
        os.close(fd)
        for procs in cgroup_procs:
            with open(procs, "w") as f:
                f.write("0")
    return enter


# The files of a VM's cgroup that set how much CPU and memory it gets (v1's
# and v2's names); those that exist are copied to plain QEMU's.
CGROUP_LIMIT_FILES = ("cpu.shares", "cpu.weight", "cpu.cfs_period_us", "cpu.cfs_quota_us",
                      "cpu.max", "memory.limit_in_bytes", "memory.max")


def plain_cgroup(d, vm_id):
    """The cgroup.procs files of a cgroup made for plain QEMU beside vireo's
    VM vm_id (in each hierarchy: the same parent, vireod's, and the same
    limits). Plain QEMU left in the caller's cgroup would not share the CPU
    as vireo's does: under cgroup v1 every task of the root cgroup weighs as
    much as the whole vireo/ tree, where every vireod of the machine keeps
    its QEMUs (at load 33 that starved vireo's VM 4-20x). d.cleanup removes
    it with the VM's cgroups."""
    procs = []
    for top in d.cgroup_dirs():
        vm_dir = os.path.join(top, vm_id)
        if not os.path.isdir(vm_dir):
            raise RuntimeError(f"vireo's VM has no cgroup at {vm_dir}")
        mine = os.path.join(top, "bench-plain")
        os.makedirs(mine, exist_ok=True)
        for name in CGROUP_LIMIT_FILES:
            src = os.path.join(vm_dir, name)
            if os.path.exists(src) and os.path.exists(os.path.join(mine, name)):
                with open(src) as f:
                    value = f.read().strip()
                with open(os.path.join(mine, name), "w") as f:
                    f.write(value)
        procs.append(os.path.join(mine, "cgroup.procs"))
    if not procs:
        raise RuntimeError("vireod keeps no cgroups (--cgroup-root off?): plain QEMU could "
                           "not share the CPU as vireo's VM does")
    return procs


def image_base():
    image = json.load(open(os.path.join(h.TEST_IMAGE, "image.json")))
    return os.path.realpath(os.path.join(h.TEST_IMAGE, image["disk"])), image.get("format", "raw")


class PlainVM:
    """Plain QEMU with the serial console on stdio (pipes); a thread drains
    stdout into a buffer so QEMU never blocks on the console."""

    def __init__(self, argv, ns_name, tmp, pids, cgroup_procs=()):
        self.tmp = tmp
        self.cond = threading.Condition()
        self.buf = bytearray()
        self.arrivals = []  # (monotonic time, bytes) of each console chunk read
        self.eof = False
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=open(os.path.join(tmp, "qemu.log"), "ab"),
                                  preexec_fn=netns_preexec(ns_name, cgroup_procs),
                                  start_new_session=True)
        pids.add(self.p.pid)
        self.pid = self.p.pid
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        fd = self.p.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self.cond:
                if not chunk:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.buf += chunk
                self.arrivals.append((time.monotonic(), len(chunk)))
                self.cond.notify_all()

    def wait_for(self, needle, start, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                pos = self.buf.find(needle, start)
                if pos >= 0:
                    return pos
                if self.eof:
                    raise RuntimeError(f"plain QEMU exited ({self.p.poll()}); see {self.tmp}/qemu.log; "
                                       f"console ends: {bytes(self.buf[-300:])!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {needle!r} from plain QEMU after {timeout}s; "
                                       f"console ends: {bytes(self.buf[-300:])!r}")
                self.cond.wait(min(left, 0.5))

    def guest(self, command, timeout=60):
        """As Daemon.guest(): the command's output between two markers."""
        tag = uuid.uuid4().hex[:8]
        begin, end_mark = f"<B{tag}>".encode(), f"<E{tag}>".encode()
        script = (f"printf '\\074B%s\\076\\n' {tag}; {command}; "
                  f"printf '\\n\\074E%s\\076\\n' {tag}\n")
        with self.cond:
            start = len(self.buf)
        self.p.stdin.write(script.encode())
        self.p.stdin.flush()
        end = self.wait_for(end_mark, start, timeout)
        with self.cond:
            text = bytes(self.buf[start:end])
        b = text.find(begin)
        if b < 0:
            raise AssertionError(f"no output of {command!r} from plain QEMU:\n{text!r}")
        return text[b + len(begin):].decode(errors="replace").replace("\r", "")

    def kill(self):
        h.kill_pid(self.pid)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except OSError:
                pass


def plain_argv(vireo_argv, d, tmp, files):
    """vireod's argv minus -S, console on stdio, QMP/pidfile our own, and the
    disks' files replaced by files[node-name] (every disk must have one)."""
    out, i, replaced = [], 0, set()
    while i < len(vireo_argv):
        a = vireo_argv[i]
        v = vireo_argv[i + 1] if i + 1 < len(vireo_argv) else None
        if a == "-S":
            i += 1
            continue
        if a == "-name":
            out += [a, "guest=bench-plain,debug-threads=on"]
        elif a == "-uuid":
            out += [a, str(uuid.uuid4())]
        elif a == "-chardev" and ",id=charmonitor," in v:
            out += [a, f"socket,id=charmonitor,path={tmp}/qmp.sock,server=on,wait=off"]
        elif a == "-chardev" and ",id=charevents," in v:
            out += [a, f"socket,id=charevents,path={tmp}/qmp-events.sock,server=on,wait=off"]
        elif a == "-chardev" and ",id=charserial0," in v:
            out += [a, "stdio,id=charserial0,signal=off"]
        elif a == "-chardev" and ",id=charagent0," in v:
            out += [a, f"socket,id=charagent0,path={tmp}/agent.sock,server=on,wait=off"]
        elif a == "-pidfile":
            out += [a, os.path.join(tmp, "qemu.pid")]
        elif a == "-blockdev" and v.startswith("{"):
            spec = json.loads(v)
            if spec.get("driver") == "file":
                node = spec["node-name"]
                if node not in files:
                    raise RuntimeError(f"no plain file for vireo's disk node {node}")
                spec["filename"] = files[node]
                replaced.add(node)
            out += [a, json.dumps(spec, separators=(",", ":"))]
        else:
            out.append(a)
            i += 1
            continue
        i += 2
    pools = os.path.join(d.state_dir, "pools")
    leftover = [x for x in out if d.run_dir in x or pools in x]
    if leftover or replaced != set(files):
        raise RuntimeError(f"could not rewrite vireod's argv for plain QEMU: {leftover}, {replaced}")
    return out


def machine_facts():
    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
        except IndexError:
            return ""
        except (OSError, subprocess.SubprocessError):
            return "?"
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    repo = os.path.join(HERE, "..")
    commit = first_line(["git", "-C", repo, "rev-parse", "--short", "HEAD"])
    if first_line(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"]) not in ("", "?"):
        commit += " + uncommitted changes"
    fs = first_line(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", tempfile.gettempdir()])
    return {
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
        "qemu": first_line(["qemu-system-x86_64", "--version"]),
        "qemu_img": first_line(["qemu-img", "--version"]),
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kib / 1048576, 1),
        "loadavg_start": load,
        "image": os.path.realpath(h.TEST_IMAGE),
        "tmp_fs": f"{tempfile.gettempdir()} on {' '.join(fs.split())}",
    }


def cpu_snapshot():
    """(busy, steal, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    steal = v[7] if len(v) > 7 else 0
    total = sum(v[:8])
    return total - idle - steal, steal, total


INTERRUPTED = []


def on_signal(signum, _frame):
    INTERRUPTED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


# ---- guest disk I/O: dd in the guest, timed by busybox `time` (bench/clone, bench/san) ----

TIME_RE = re.compile(r"real\s+(?:(\d+)h\s*)?(\d+)m\s*([0-9.]+)s")


def guest_time(text):
    m = TIME_RE.search(text)
    if not m:
        return None
    return int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def dd_op(run_cmd, cpu_pid, dev, op, count, timeout):
    if op == "write":
        cmd = f"time dd if=/dev/zero of=/dev/{dev} bs=1M count={count} conv=fsync 2>&1"
    else:
        cmd = f"echo 3 > /proc/sys/vm/drop_caches; time dd if=/dev/{dev} of=/dev/null bs=1M count={count} 2>&1"
    c0 = proc_cpu_s(cpu_pid)
    t0 = time.monotonic()
    out = run_cmd(cmd, timeout)
    host_s = time.monotonic() - t0
    c1 = proc_cpu_s(cpu_pid)
    if f"{count}+0 records out" not in out:
        raise RuntimeError(f"dd {op} /dev/{dev} did not complete: {out!r}")
    g = guest_time(out)
    if g is None:
        raise RuntimeError(f"no `time` output from dd {op} /dev/{dev}: {out!r}")
    return {"guest_s": g, "host_s": host_s,
            "qemu_cpu_s": c1 - c0 if c0 is not None and c1 is not None else None}


def percentile(xs, p):
    """The p-th percentile of xs (nearest rank), or nan when xs is empty."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]
