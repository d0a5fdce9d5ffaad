"""System test of per-VM QEMU uids (vireod --qemu-uid-range, docs/security.md):
two VMs' QEMUs run as two uids of the range (group vireo-qemu), so neither
can signal the other's QEMU nor make a file in the other's run dir (the
API's qemu_uid and vm show name each one's, also after a vireod restart); each
writes only in its own dir (RUN/vms/ID/qemu), and what QEMU writes after its
start still works there (a screenshot, a memory snapshot, a backup); a
restarted vireod re-attaches both with their uids and hands a third VM a
third; a uid whose lock another holds is skipped; a full range refuses a
start with a clear error; the uid of a VM stopped, or of a QEMU that died
while vireod was down, is free again; a QEMU's exit does not free its uid
before vireod has removed its dir. A live migration between two hosts
(mutual TLS, memory verified by pmemsave), with the default range, gives the
destination's QEMU a uid of its own. test_qemu_confine.py covers
--qemu-uid-range off (one shared user)."""

import fcntl
import grp
import os
import signal
import subprocess

import pytest

from vireo_harness import Daemon, UnixHTTPConnection, pid_alive, stop_process, wait_until
from test_migrate import create_on, form, shared_pool

# Above vireod's default range (1879048192-1879113727, which the other
# tests' vireods use), still outside every range systemd or useradd hands
# out; each test run its own slice, so two runs on one machine do not mix.
FIRST = 1879113728 + (os.getpid() % 4096) * 16
RANGE = f"{FIRST}-{FIRST + 2}"


def qemu_gid():
    return grp.getgrnam("vireo-qemu").gr_gid


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    uids, gids = fields["Uid"].split(), fields["Gid"].split()
    assert len(set(uids)) == 1 and gids == [str(qemu_gid())] * 4, fields
    assert fields["Groups"].split() == [str(qemu_gid())], fields
    return int(uids[0])


def as_uid(uid, *cmd):
    """cmd run as uid, group vireo-qemu (as a QEMU of the range runs)."""
    return subprocess.run(["setpriv", "--reuid", str(uid), "--regid", str(qemu_gid()),
                           "--clear-groups", *cmd], capture_output=True, text=True)


@pytest.fixture(scope="module")
def daemon():
    d = Daemon(args=["--qemu-uid-range", RANGE])
    try:
        yield d
    finally:
        d.cleanup()


def start(d, name):
    d.cli("vm", "start", name)
    vm = d.vm(name)
    d.qemu_pids.add(vm["pid"])
    return vm


def test_each_vm_has_its_own_uid(daemon):
    d = daemon
    d.cli("vm", "create", "a", "--memory", "128M", "--display", "vga")
    for name in ("b", "c", "d"):
        d.cli("vm", "create", name, "--memory", "128M")
    a, b = start(d, "a"), start(d, "b")
    ua, ub = uid_of(a["pid"]), uid_of(b["pid"])
    assert ua != ub and {ua, ub} <= set(range(FIRST, FIRST + 3)), (ua, ub, RANGE)
    # the API and vm show name each VM's uid
    assert (a["qemu_uid"], b["qemu_uid"]) == (ua, ub), (a, b)
    assert f"qemu uid:    {ub}\n" in d.cli("vm", "show", "b").stdout
    with open(f"/proc/{a['pid']}/cmdline") as f:
        argv = f.read().split("\0")
    assert argv[argv.index("-run-with") + 1] == f"user={ua}:{qemu_gid()}"
    # each QEMU holds its uid's lock (other vireods of the machine skip it
    # even before QEMU dropped to it)
    fds = os.listdir(f"/proc/{a['pid']}/fd")
    assert f"/run/lock/vireo-qemu-uids/{ua}" in {os.readlink(f"/proc/{a['pid']}/fd/{fd}")
                                                 for fd in fds}

    # a's uid cannot signal b's QEMU (b's own uid can: the check works)
    p = as_uid(ua, "kill", "-0", str(b["pid"]))
    assert p.returncode != 0 and "Operation not permitted" in p.stderr, p
    assert as_uid(ub, "kill", "-0", str(b["pid"])).returncode == 0

    # nor make a file in b's run dir or b's own dir; b makes files in its
    # own dir only (the run dir, root's files in it, stay root's)
    run_b = os.path.join(d.run_dir, "vms", b["id"])
    own_b = os.path.join(run_b, "qemu")
    st = os.stat(own_b)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (ub, qemu_gid(), 0o700), st
    st = os.stat(run_b)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, qemu_gid(), 0o710), st
    for target in (os.path.join(run_b, "x"), os.path.join(own_b, "x")):
        p = as_uid(ua, "touch", target)
        assert p.returncode != 0 and not os.path.exists(target), (target, p)
    assert as_uid(ub, "touch", os.path.join(own_b, "x")).returncode == 0
    p = as_uid(ub, "mv", os.path.join(run_b, "qemu.argv"), os.path.join(own_b, "argv"))
    assert p.returncode != 0 and os.path.exists(os.path.join(run_b, "qemu.argv")), p

    # what QEMU writes after its start: a screenshot, a memory snapshot
    # (and its revert), a backup
    conn = UnixHTTPConnection(d.socket, timeout=60)
    conn.request("GET", "/v1/vms/a/screenshot")
    resp = conn.getresponse()
    png = resp.read()
    conn.close()
    assert resp.status == 200 and png.startswith(b"\x89PNG"), (resp.status, png[:200])
    d.task_ok("POST", "/v1/vms/a/snapshots", {"name": "s1", "memory": True})
    d.task_ok("POST", "/v1/vms/a/snapshots/s1/revert", {"force": True})
    doc = d.api("POST", "/v1/vms/b/backups", {}, expect=202)
    task = d.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task

    # a restarted vireod re-attaches both with their uids; a third VM gets
    # the third uid, a fourth finds the range full
    d.stop()
    d.start()
    for vm, uid in ((a, ua), (b, ub)):
        now = d.vm(vm["name"])
        assert now["state"] == "running" and now["pid"] == vm["pid"], now
        assert uid_of(now["pid"]) == uid and now["qemu_uid"] == uid, now
    # a uid whose lock another holds (a QEMU of another vireod, still root)
    # is not handed out
    third = (set(range(FIRST, FIRST + 3)) - {ua, ub}).pop()
    held = os.open(f"/run/lock/vireo-qemu-uids/{third}", os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(held, fcntl.LOCK_SH)
        p = d.cli("vm", "start", "c", check=False)
        assert p.returncode != 0 and "no free uid" in p.stderr, p
    finally:
        os.close(held)
    c = start(d, "c")
    uc = uid_of(c["pid"])
    assert uc not in (ua, ub) and FIRST <= uc <= FIRST + 2, (uc, ua, ub)
    p = d.cli("vm", "start", "d", check=False)
    assert p.returncode != 0 and f"no free uid for QEMU in --qemu-uid-range {RANGE}" in p.stderr, p
    assert d.vm("d")["state"] == "defined", d.vm("d")  # never started
    assert not os.path.exists(os.path.join(d.run_dir, "vms", d.vm("d")["id"], "qemu"))
    # a QEMU that died while vireod was down: its dir goes when vireod
    # finds it gone, and its uid is free again
    d.stop()
    os.kill(a["pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(a["pid"]), 10, what="a's QEMU to die")
    d.start()
    assert not os.path.exists(os.path.join(d.run_dir, "vms", a["id"], "qemu"))
    assert uid_of(start(d, "d")["pid"]) == ua
    # a stopped VM's dir goes at once, and its uid is free again
    d.cli("vm", "stop", "b", "--force")
    assert not os.path.exists(os.path.join(d.run_dir, "vms", b["id"], "qemu"))
    assert uid_of(start(d, "a")["pid"]) == ub


def lock_free(path):
    """Whether nobody holds a lock on path (a write lock can be taken)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


def test_a_uid_stays_taken_until_its_dir_is_gone():
    # While vireod has not yet seen its QEMU exit, what the QEMU left in its
    # dir (screendumps, a memory check's scratch) is still there: its uid
    # must not go to another VM's QEMU, which could read it.
    d = Daemon(args=["--qemu-uid-range", f"{FIRST + 4}-{FIRST + 5}"])
    try:
        d.cli("vm", "create", "e", "--memory", "128M")
        e = start(d, "e")
        lock = f"/run/lock/vireo-qemu-uids/{uid_of(e['pid'])}"
        own = os.path.join(d.run_dir, "vms", e["id"], "qemu")
        assert not lock_free(lock)
        stop_process(d.proc.pid)  # every thread, before it could see QEMU die
        try:
            os.kill(e["pid"], signal.SIGKILL)
            # all its threads gone (a zombie leader's others may still hold
            # its fds a moment): what held the lock with QEMU alone is free
            wait_until(lambda: not pid_alive(e["pid"]) and threads(e["pid"]) <= 1, 10,
                       what="e's QEMU to die")
            assert os.path.isdir(own)
            assert not lock_free(lock), "the uid is free while its QEMU's dir is still there"
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        wait_until(lambda: lock_free(lock), 60, what="e's uid to be free")
        assert not os.path.exists(own)
    finally:
        d.cleanup()


def test_a_migration_destination_gets_its_own_uid(cluster):
    c = cluster(2, driver="qemu", listen=False)  # the default range
    first, last = 1879048192, 1879113727
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    create_on(h1, "m", memory=128, accel="tcg")
    h1.cli("vm", "start", "m")
    src = h1.vm("m")["pid"]
    u1 = uid_of(src)
    out = h1.cli("vm", "migrate", "m", "--to", "h2", "--verify-memory", timeout=600).stdout
    assert "memory verified" in out, out
    wait_until(lambda: h2.vm("m").get("pid"), 30, what="m's pid on h2")
    u2 = uid_of(h2.vm("m")["pid"])
    # the source's QEMU still ran as u1 when the destination's started
    assert u2 != u1 and first <= min(u1, u2) and max(u1, u2) <= last, (u1, u2)
    assert not os.path.exists(os.path.join(h1.run_dir, "vms", h2.vm("m")["id"]))
    h2.cli("vm", "stop", "m", "--force")
