"""System tests of backup bandwidth limits (bwlimit_mib / --bwlimit) and of
cancelling a backup, a restore and a verify while they run, on a real TCG
guest with real QEMU backup jobs.

The limit is what makes them slow enough to be caught running: a backup at
1 MiB/s of a data disk the guest filled with random data runs for many
seconds, and so do a restore (qemu-img convert -r) and a verify (paced
sha256 reads). Each is cancelled once it has made progress; it must end
`cancelled` and leave nothing: no backup listed or in the pool (directories
listed before and after), no QEMU block job (the VM runs on, the next backup
succeeds), no new VM or volume, no temp file, no result recorded; and an
incremental backup after a cancelled one still holds every change since the
last good backup (its dirty bitmaps were not synchronised). Every wait is
bounded; no timing is asserted."""

import hashlib
import os
import subprocess

from vireo_harness import BOOT_MARKER, pid_alive, wait_until
from test_crash_recovery import children

MiB = 1 << 20


def task(d, tid):
    return d.api("GET", f"/v1/tasks/{tid}")


def wait_ended(d, tid, timeout=120):
    return wait_until(lambda: (t := task(d, tid))["state"] in ("succeeded", "failed",
                                                               "cancelled") and t,
                      timeout, what=f"task {tid} to end")


def wait_running(d, tid, check, what, timeout=180):
    """Waits until task tid runs and check(task) holds; fails when it ends
    first (then the limit did not hold it back)."""
    def ready():
        t = task(d, tid)
        assert t["state"] in ("queued", "running"), f"{what}: it ended first: {t}"
        return t["state"] == "running" and check(t) and t
    return wait_until(ready, timeout, interval=0.2, what=what)


def copying_limited(t):
    """A backup task copying at 1 MiB/s (its message says so), past its
    first percent."""
    return t["message"] == "copying disks (at most 1 MiB/s)" and t["progress"] > 5


def pool_dir(d, pool):
    return d.api("GET", f"/v1/pools/{pool}")["path"]


def listing(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def backups(d, vm):
    return [b["id"] for b in d.api("GET", f"/v1/backups?vm={vm}")]


def take_backup(d, vm, **body):
    t = d.api("POST", f"/v1/vms/{vm}/backups", body, expect=202)["task"]
    t = wait_ended(d, t["id"], timeout=300)
    assert t["state"] == "succeeded", t
    return d.api("GET", f"/v1/backups/{t['message']}")


def child_argv(d, name):
    """argv (strings) of vireod's child running `name` (a basename), or None."""
    for pid in children(d.proc.pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode() for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == name and (name != "qemu-img" or
                                                            "convert" in argv):
            return pid, argv
    return None


def file_sums(paths):
    out = {}
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(MiB), b""):
                h.update(chunk)
        out[p] = h.hexdigest()
    return out


def cancel_cli(d, tid):
    """`vireo task cancel ID`: follows the task until it ends."""
    out = d.cli("task", "cancel", tid, timeout=120).stdout
    assert "cancelled" in out, out


def cancel_api(d, tid):
    doc = d.api("POST", f"/v1/tasks/{tid}/cancel", expect=202)["task"]
    assert doc["cancel_requested"] is True


def assert_no_job_leftovers(d):
    log = d.log()
    assert "jobs left running" not in log and "did not conclude" not in log, log[-2000:]


def test_bad_bwlimit(daemon):
    daemon.cli("vm", "create", "bwbad", "--memory", "128M")
    for body in ({"bwlimit_mib": 0}, {"bwlimit_mib": -5}, {"bwlimit_mib": 1.5},
                 {"bwlimit_mib": "10"}, {"bwlimit_mib": None}, {"bwlimit_mib": 1048577}):
        status, doc = daemon.request("POST", "/v1/vms/bwbad/backups", body)
        assert status == 400, (body, doc)
        assert doc["error"]["code"] == "invalid-argument"
        assert "bwlimit_mib" in doc["error"]["message"] and "MiB/s" in doc["error"]["message"]
    for arg in ("0", "x", "-1", "1048577"):
        p = daemon.cli("backup", "create", "bwbad", "--bwlimit", arg, check=False)
        assert p.returncode == 2 and "--bwlimit" in p.stderr, (arg, p.stderr)
    b = take_backup(daemon, "bwbad", bwlimit_mib=1024)
    for path in (f"/v1/backups/{b['id']}/restore", f"/v1/backups/{b['id']}/verify"):
        status, doc = daemon.request("POST", path, {"bwlimit_mib": 0})
        assert status == 400 and "bwlimit_mib" in doc["error"]["message"], doc
    p = daemon.cli("backup", "verify", b["id"], "--bwlimit", "0", check=False)
    assert p.returncode == 2
    p = daemon.cli("backup", "restore", b["id"], "--bwlimit", "abc", check=False)
    assert p.returncode == 2
    # Nothing was made by the refused requests.
    assert backups(daemon, "bwbad") == [b["id"]]
    assert listing(pool_dir(daemon, "backup")) == [b["id"]]
    assert [v["name"] for v in daemon.api("GET", "/v1/vms")["vms"]] == ["bwbad"]


def test_cancel_running_backup_restore_and_verify(daemon):
    d = daemon
    d.cli("vm", "create", "bw", "--memory", "128M")
    t = d.api("POST", "/v1/vms/bw/disks", {"size_bytes": 64 * MiB}, expect=202)["task"]
    assert wait_ended(d, t["id"])["state"] == "succeeded"
    d.cli("vm", "start", "bw")
    d.wait_console("bw", BOOT_MARKER, timeout=180)
    d.remember_qemu_pids()
    # The data disk, filled by the guest: what makes a limited backup slow.
    d.guest("bw", "dd if=/dev/urandom of=/dev/vdb bs=1M count=24 2>/dev/null; sync; echo ok",
            timeout=300)

    # 1. A full backup at 1 MiB/s, cancelled with `vireo task cancel`.
    t = d.api("POST", "/v1/vms/bw/backups", {"bwlimit_mib": 1}, expect=202)["task"]
    assert t["cancellable"] is True
    wait_running(d, t["id"], copying_limited,
                 "the limited full backup to copy")
    pool = pool_dir(d, "backup")
    assert [p for p in listing(pool) if p.startswith(".partial-")], listing(pool)
    cancel_cli(d, t["id"])
    end = task(d, t["id"])
    assert end["state"] == "cancelled" and end["finished_at"] is not None, end
    assert backups(d, "bw") == [] and listing(pool) == []
    assert d.vm("bw")["state"] == "running"

    # 2. The next full backup (no limit) works: no job or node was left in QEMU.
    full = take_backup(d, "bw")
    assert full["kind"] == "full" and full["vm_running"] is True
    assert listing(pool) == [full["id"]]

    # 3. Changes, then an incremental at 1 MiB/s, cancelled through the API.
    d.guest("bw", "dd if=/dev/urandom of=/dev/vdb bs=1M seek=32 count=16 2>/dev/null; sync; "
                  "echo ok", timeout=300)
    t = d.api("POST", "/v1/vms/bw/backups", {"incremental": True, "bwlimit_mib": 1},
              expect=202)["task"]
    wait_running(d, t["id"], copying_limited,
                 "the limited incremental backup to copy")
    cancel_api(d, t["id"])
    end = wait_ended(d, t["id"])
    assert end["state"] == "cancelled", end
    assert backups(d, "bw") == [full["id"]] and listing(pool) == [full["id"]]
    assert d.vm("bw")["state"] == "running"

    # 4. The incremental after it still is one, on the full backup, and holds
    # every change since (the cancelled jobs synchronised no bitmap).
    inc = take_backup(d, "bw", incremental=True)
    assert inc["kind"] == "incremental" and inc["parent"] == full["id"], inc
    assert inc["stored_bytes"] >= 16 * MiB, inc
    assert listing(pool) == sorted([full["id"], inc["id"]])
    assert_no_job_leftovers(d)

    # 5. A verify at 1 MiB/s (the chain holds tens of MiB), cancelled: no
    # result recorded; a verify without a limit then succeeds.
    t = d.api("POST", f"/v1/backups/{inc['id']}/verify", {"bwlimit_mib": 1},
              expect=202)["task"]
    wait_running(d, t["id"], lambda x: x["message"] == "checking files", "the verify to read")
    cancel_cli(d, t["id"])
    assert task(d, t["id"])["state"] == "cancelled"
    assert d.api("GET", f"/v1/backups/{inc['id']}")["last_verify"] is None
    d.cli("backup", "verify", inc["id"])
    checked = d.api("GET", f"/v1/backups/{inc['id']}")["last_verify"]
    assert checked["ok"] is True and checked["files"] == 4, checked

    # 6. A restore into a new VM at 1 MiB/s: qemu-img convert -r, cancelled:
    # no VM, no volume, no file.
    volumes = d.api("GET", "/v1/volumes")["volumes"]
    default_dir = pool_dir(d, "default")
    before = listing(default_dir)
    t = d.api("POST", f"/v1/backups/{inc['id']}/restore", {"as": "bw-copy", "bwlimit_mib": 1},
              expect=202)["task"]
    found = wait_until(lambda: child_argv(d, "qemu-img"), 180, what="the restore's convert")
    pid, argv = found
    assert argv[argv.index("-r") + 1] == str(MiB), argv
    wait_running(d, t["id"], lambda x: x["message"].startswith("copying"),
                 "the restore to copy")
    cancel_api(d, t["id"])
    assert wait_ended(d, t["id"])["state"] == "cancelled"
    wait_until(lambda: not pid_alive(pid), 30, what="the cancelled qemu-img to die")
    assert d.request("GET", "/v1/vms/bw-copy")[0] == 404
    assert d.api("GET", "/v1/volumes")["volumes"] == volumes
    assert listing(default_dir) == before

    # 7. The VM stopped: a restore over it at 1 MiB/s, cancelled, changes
    # none of its files and leaves no temp file.
    d.cli("vm", "stop", "bw")
    disks = [x["path"] for x in d.api("GET", "/v1/vms/bw/disks")["disks"]]
    sums = file_sums(disks)
    dirs = sorted({os.path.dirname(p) for p in disks})
    before = {x: listing(x) for x in dirs}
    t = d.api("POST", f"/v1/backups/{inc['id']}/restore", {"bwlimit_mib": 1},
              expect=202)["task"]
    pid, argv = wait_until(lambda: child_argv(d, "qemu-img"), 180,
                           what="the restore's convert")
    wait_running(d, t["id"], lambda x: x["message"].startswith("copying"),
                 "the restore to copy")
    cancel_cli(d, t["id"])
    assert task(d, t["id"])["state"] == "cancelled"
    wait_until(lambda: not pid_alive(pid), 30, what="the cancelled qemu-img to die")
    assert file_sums(disks) == sums
    assert {x: listing(x) for x in dirs} == before

    # 8. A stopped VM's backup (qemu-storage-daemon) at 1 MiB/s, cancelled:
    # the storage daemon is gone, nothing is listed or left in the pool.
    t = d.api("POST", "/v1/vms/bw/backups", {"bwlimit_mib": 1}, expect=202)["task"]
    qsd, _ = wait_until(lambda: child_argv(d, "qemu-storage-daemon"), 120,
                        what="the backup's qemu-storage-daemon")
    wait_running(d, t["id"], copying_limited,
                 "the stopped VM's limited backup to copy")
    cancel_api(d, t["id"])
    assert wait_ended(d, t["id"])["state"] == "cancelled"
    wait_until(lambda: not pid_alive(qsd), 60, what="the storage daemon to quit")
    assert backups(d, "bw") == [full["id"], inc["id"]]
    assert listing(pool) == sorted([full["id"], inc["id"]])
    assert_no_job_leftovers(d)
    # The data disk (untouched by the guest since the incremental backup)
    # still reads as that backup's chain: the cancelled restore over it and
    # backup changed nothing of it.
    data = os.path.join(pool, inc["id"], inc["disks"][1]["file"])
    same = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", disks[1], data],
                          capture_output=True, text=True, timeout=120)
    assert same.returncode == 0, same.stdout + same.stderr
    # The VM starts: the backup's lock and the storage daemon's hold on its
    # disks are gone.
    d.cli("vm", "start", "bw")
    d.wait_state("bw", "running", timeout=60)
    d.remember_qemu_pids()
