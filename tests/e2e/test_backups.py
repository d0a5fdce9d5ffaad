"""System tests of VM backups on real TCG guests and real qcow2 files:
full and incremental backups of running VMs (QEMU backup jobs with persistent
dirty bitmaps) and of stopped ones (qemu-storage-daemon), restore into a new
VM and over the original, verification against recorded checksums,
retention with rebasing, a full backup pool, and bad input.

Guests prove data with sha256sum inside the guest; VMs that never boot get
their disks changed with qemu-io (which keeps the persistent bitmaps up to
date, as QEMU does) and are compared with qemu-img compare."""

import json
import os
import subprocess

import pytest

from vireo_harness import BOOT_MARKER, wait_until

MiB = 1024 * 1024


def backup(daemon, vm, **body):
    """Backs vm up; returns the new backup's document."""
    doc = daemon.api("POST", f"/v1/vms/{vm}/backups", body, expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    assert task["kind"] == "backup-create" and task["target"] == vm
    return daemon.api("GET", f"/v1/backups/{task['message']}")


def failed_backup(daemon, vm, **body):
    doc = daemon.api("POST", f"/v1/vms/{vm}/backups", body, expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    assert task["state"] == "failed", task
    return task


def write_random(daemon, vm, path, mib):
    """Writes mib MiB of random data to path in the guest; its sha256."""
    out = daemon.guest(vm, f"dd if=/dev/urandom of={path} bs=1M count={mib} 2>/dev/null; "
                           f"sync; sha256sum {path}", timeout=120)
    return out.split()[0]


def guest_sum(daemon, vm, path):
    return daemon.guest(vm, f"sha256sum {path} 2>&1").split()[0]


def boot(daemon, vm, count=1):
    daemon.cli("vm", "start", vm)
    daemon.wait_console(vm, BOOT_MARKER, count=count, timeout=120)
    daemon.remember_qemu_pids()


def restore(daemon, backup_id, **body):
    doc = daemon.api("POST", f"/v1/backups/{backup_id}/restore", body, expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    return task


def backup_dir(daemon, b):
    pool = daemon.api("GET", f"/v1/pools/{b['pool']}")
    return os.path.join(pool["path"], b["id"])


def disk_path(daemon, vm, index=0):
    return daemon.api("GET", f"/v1/vms/{vm}/disks")["disks"][index]["path"]


def qemu_io(path, command):
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, path], check=True,
                   capture_output=True, timeout=60)


def images_identical(a, b):
    p = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", a, b],
                       capture_output=True, text=True, timeout=120)
    return p.returncode == 0, p.stdout + p.stderr


def test_incremental_of_a_running_vm_is_small_and_restores(daemon):
    daemon.create_and_boot("inc", memory="128M")
    # Data the full backup must carry, so that "a small fraction" means something.
    write_random(daemon, "inc", "/root/base", 8)
    full = backup(daemon, "inc")
    assert full["kind"] == "full" and full["parent"] is None and full["vm_running"] is True
    assert full["reason"] is None
    assert full["stored_bytes"] == sum(d["stored_bytes"] for d in full["disks"]) > 8 * MiB
    checksum = write_random(daemon, "inc", "/root/data", 1)
    inc = backup(daemon, "inc", incremental=True)
    assert inc["kind"] == "incremental" and inc["parent"] == full["id"], inc
    # Only the changed blocks: a small fraction of the full backup.
    assert inc["stored_bytes"] < full["stored_bytes"] * 0.25, (inc, full)
    assert inc["stored_bytes"] >= 1 * MiB
    assert [b["id"] for b in daemon.api("GET", "/v1/backups?vm=inc")] == [full["id"], inc["id"]]
    assert daemon.vm("inc")["state"] == "running"
    # The chain, restored to a new VM, holds the change.
    daemon.cli("vm", "stop", "inc")
    restore(daemon, inc["id"], **{"as": "inc-copy"})
    copy = daemon.vm("inc-copy")
    assert copy["id"] != daemon.vm("inc")["id"]
    assert copy["nics"][0]["mac"] != daemon.vm("inc")["nics"][0]["mac"]
    boot(daemon, "inc-copy")
    assert guest_sum(daemon, "inc-copy", "/root/data") == checksum


def test_bitmaps_survive_a_restart_and_a_kill_makes_the_next_one_full(daemon):
    daemon.create_and_boot("keep", memory="128M")
    write_random(daemon, "keep", "/root/base", 8)
    full = backup(daemon, "keep")
    daemon.cli("vm", "stop", "keep")  # ACPI: QEMU exits cleanly and writes the bitmaps
    boot(daemon, "keep", count=2)
    write_random(daemon, "keep", "/root/after-restart", 1)
    inc = backup(daemon, "keep", incremental=True)
    assert inc["kind"] == "incremental" and inc["parent"] == full["id"], inc
    assert inc["stored_bytes"] < full["stored_bytes"] * 0.25
    # QEMU killed: its bitmaps are inconsistent, so the next backup is full and says why.
    daemon.cli("vm", "stop", "keep", "--force")
    # Backups of a running VM need its QEMU, not a booted guest (make check
    # is CPU-bound: the test ends before this boot would).
    daemon.cli("vm", "start", "keep")
    daemon.remember_qemu_pids()
    after_kill = backup(daemon, "keep", incremental=True)
    assert after_kill["kind"] == "full" and after_kill["parent"] is None
    assert "inconsistent" in after_kill["reason"], after_kill
    again = backup(daemon, "keep", incremental=True)
    assert again["kind"] == "incremental" and again["parent"] == after_kill["id"]


def test_stopped_vm_backups_and_restore_over_the_original(daemon, tmp_path):
    daemon.create_and_boot("cold", memory="128M")
    # 6 MiB the full backup holds and the incremental must not: the guest's
    # next boot writes about 1 MB of its own (more on a busy machine).
    write_random(daemon, "cold", "/root/first", 6)
    daemon.cli("vm", "stop", "cold")
    full = backup(daemon, "cold")
    assert full["kind"] == "full" and full["vm_running"] is False
    boot(daemon, "cold", count=2)
    write_random(daemon, "cold", "/root/second", 1)
    daemon.cli("vm", "stop", "cold")
    inc = backup(daemon, "cold", incremental=True)  # through qemu-storage-daemon
    assert inc["kind"] == "incremental" and inc["parent"] == full["id"], inc
    assert inc["stored_bytes"] < full["stored_bytes"] * 0.25
    # What the guest sees of its disk now, the state the restore must bring
    # back (a copy of the whole disk: compared after the restore, it proves
    # every file, /root/first and /root/second included, without booting
    # the guest twice more under TCG).
    disk = disk_path(daemon, "cold")
    at_backup = str(tmp_path / "at-backup.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", disk, at_backup],
                   check=True, capture_output=True, timeout=120)
    # Not over a running VM (its QEMU runs; its guest need not have booted).
    daemon.cli("vm", "start", "cold")
    daemon.remember_qemu_pids()
    status, doc = daemon.request("POST", f"/v1/backups/{inc['id']}/restore", {})
    assert status == 409 and "stop" in doc["error"]["message"], doc
    daemon.cli("vm", "stop", "cold", "--force")
    # Changes since the backup (the guest's start may have written some too).
    qemu_io(disk, "write -P 0x66 0 2M")
    qemu_io(disk, "write -P 0x67 40M 1M")
    assert not images_identical(disk, at_backup)[0]
    vm_id = daemon.vm("cold")["id"]
    out = daemon.cli("backup", "restore", inc["id"]).stdout
    assert "restored" in out
    assert daemon.vm("cold")["id"] == vm_id
    # The volume is a file of its own now.
    volume = daemon.api("GET", "/v1/vms/cold/disks")["disks"][0]["volume"]
    vol = daemon.api("GET", "/v1/pools/" + volume.replace("/", "/volumes/"))
    assert vol["backing"] == [] and vol["image"] is None, vol
    same, why = images_identical(disk_path(daemon, "cold"), at_backup)
    assert same, why
    # Its bitmaps went with the old files: the next backup is full.
    assert backup(daemon, "cold", incremental=True)["kind"] == "full"


def test_verify_finds_a_corrupted_byte(daemon):
    daemon.cli("vm", "create", "ver", "--memory", "128M")
    full = backup(daemon, "ver")
    disk = disk_path(daemon, "ver")
    qemu_io(disk, "write -P 0x5a 1M 1M")
    inc = backup(daemon, "ver", incremental=True)
    assert inc["kind"] == "incremental"
    out = daemon.cli("backup", "verify", inc["id"]).stdout
    assert "verified" in out
    checked = daemon.api("GET", f"/v1/backups/{inc['id']}")["last_verify"]
    assert checked["ok"] is True and checked["files"] == 2 and checked["problems"] == []
    # One byte of the parent changes: verifying the child finds it.
    path = os.path.join(backup_dir(daemon, full), full["disks"][0]["file"])
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    p = daemon.cli("backup", "verify", inc["id"], check=False)
    assert p.returncode == 1
    assert "sha256 mismatch" in p.stderr and full["id"] in p.stderr, p.stderr
    checked = daemon.api("GET", f"/v1/backups/{inc['id']}")["last_verify"]
    assert checked["ok"] is False and len(checked["problems"]) >= 1


def test_keep_last_rebases_and_the_rest_still_restores(daemon):
    daemon.cli("vm", "create", "ret", "--memory", "128M")
    disk = disk_path(daemon, "ret")
    b1 = backup(daemon, "ret", keep_last=2)
    qemu_io(disk, "write -P 0x11 0 2M")
    b2 = backup(daemon, "ret", incremental=True, keep_last=2)
    qemu_io(disk, "write -P 0x22 1M 2M")
    qemu_io(disk, "write -z 8M 1M")
    out = daemon.cli("backup", "create", "ret", "--incremental", "--keep-last", "2").stdout
    b3_id = out.split()[1]
    listed = daemon.cli_json("backup", "list", "ret")
    assert [b["id"] for b in listed] == [b2["id"], b3_id]
    assert not os.path.exists(backup_dir(daemon, b1))
    b2_now, b3 = listed
    # b2 lost its parent: rebased onto nothing, it stands alone now.
    assert b2_now["parent"] is None and b2_now["kind"] == "full"
    assert b3["parent"] == b2["id"] and b3["kind"] == "incremental"
    restore(daemon, b3_id, **{"as": "ret-copy"})
    same, why = images_identical(disk_path(daemon, "ret"), disk_path(daemon, "ret-copy"))
    assert same, why
    daemon.cli("backup", "verify", b3_id)
    # Deleting the middle of a chain keeps the newest restorable too.
    b4 = backup(daemon, "ret", incremental=True)
    daemon.cli("backup", "delete", b3_id)
    assert daemon.api("GET", f"/v1/backups/{b4['id']}")["parent"] == b2["id"]
    daemon.cli("vm", "delete", "ret-copy")
    restore(daemon, b4["id"], **{"as": "ret-copy"})
    same, why = images_identical(disk_path(daemon, "ret"), disk_path(daemon, "ret-copy"))
    assert same, why


@pytest.fixture
def small_backup_pool(tmpfs_pool):
    """A vireod with a backup pool "small" on a 40 MiB tmpfs."""
    return tmpfs_pool("40m", type="backup")


def test_full_backup_pool_fails_cleanly_and_loses_no_change(small_backup_pool):
    daemon, mnt = small_backup_pool
    daemon.create_and_boot("tight", memory="128M")
    full = backup(daemon, "tight", pool="small")
    assert full["pool"] == "small"
    # Leave about 2 MiB free, then change 6 MiB: the incremental cannot fit.
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    with open(mnt / "filler", "wb") as f:
        f.write(b"\1" * (free - 2 * MiB))
    big = write_random(daemon, "tight", "/root/big", 6)
    before = sorted(os.listdir(mnt))
    task = failed_backup(daemon, "tight", pool="small", incremental=True)
    assert "full" in task["error"]["message"] or "space" in task["error"]["message"], task
    assert task["error"]["code"] == "insufficient-storage"
    assert daemon.vm("tight")["state"] == "running"
    assert [b["id"] for b in daemon.api("GET", "/v1/backups?vm=tight")] == [full["id"]]
    assert sorted(os.listdir(mnt)) == before
    assert guest_sum(daemon, "tight", "/root/big") == big
    # Room again: the next incremental still has every change since the full one.
    os.unlink(mnt / "filler")
    small = write_random(daemon, "tight", "/root/small", 1)
    inc = backup(daemon, "tight", pool="small", incremental=True)
    assert inc["kind"] == "incremental" and inc["parent"] == full["id"], inc
    assert inc["stored_bytes"] >= 7 * MiB
    daemon.cli("vm", "stop", "tight")
    restore(daemon, inc["id"], **{"as": "tight-copy"})
    boot(daemon, "tight-copy")
    assert guest_sum(daemon, "tight-copy", "/root/big") == big
    assert guest_sum(daemon, "tight-copy", "/root/small") == small


def test_bad_input(daemon, tmp_path):
    daemon.cli("vm", "create", "bad", "--memory", "128M")
    daemon.cli("vm", "create", "other", "--memory", "128M")
    status, doc = daemon.request("POST", "/v1/vms/nope/backups", {})
    assert status == 404, doc
    for body, fragment in (({"keep_last": -1}, "keep_last"), ({"bogus": 1}, "bogus"),
                           ({"pool": "nope"}, "nope"), ({"pool": "default"}, "backup pool")):
        status, doc = daemon.request("POST", "/v1/vms/bad/backups", body)
        assert status in (400, 404) and fragment in doc["error"]["message"], (body, doc)
    # A dir pool takes no backups, a backup pool no volumes.
    status, doc = daemon.request("POST", "/v1/vms/bad/backups", {"pool": "default"})
    assert status == 400 and doc["error"]["code"] == "invalid-argument"
    b = backup(daemon, "bad")
    status, doc = daemon.request("POST", "/v1/pools/backup/volumes",
                                 {"name": "v", "size_bytes": MiB})
    assert status == 400 and "backup pool" in doc["error"]["message"], doc
    # Ids that try to leave the pool directory.
    for bad_id in ("..", "..%2f..%2fetc", "%2e%2e", "UPPER", "a.b"):
        for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/verify"),
                               ("POST", "/restore")):
            status, doc = daemon.request(method, f"/v1/backups/{bad_id}{suffix}",
                                         {} if method == "POST" else None)
            assert status in (400, 404), (method, bad_id, status, doc)
    status, doc = daemon.request("GET", "/v1/backups/..")
    assert status == 400 and "invalid" in doc["error"]["message"]
    status, doc = daemon.request("GET", "/v1/backups/bad-20000101-000000-0000")
    assert status == 404
    # Restore as a name that is taken.
    status, doc = daemon.request("POST", f"/v1/backups/{b['id']}/restore", {"as": "other"})
    assert status == 409 and "other" in doc["error"]["message"], doc
    status, doc = daemon.request("POST", f"/v1/backups/{b['id']}/restore", {"as": "Bad!"})
    assert status == 400
    p = daemon.cli("backup", "restore", b["id"], "--as", "other", check=False)
    assert p.returncode == 1 and "already exists" in p.stderr
    p = daemon.cli("backup", "create", "bad", "--keep-last", "0", check=False)
    assert p.returncode == 2
    p = daemon.cli("backup", "create", "bad", "--target", "default", check=False)
    assert p.returncode == 1 and "backup pool" in p.stderr
    # Nothing half-made anywhere.
    pool_dir = daemon.api("GET", "/v1/pools/backup")["path"]
    assert sorted(os.listdir(pool_dir)) == [b["id"]]
    assert [x["id"] for x in daemon.api("GET", "/v1/backups")] == [b["id"]]


def test_leftovers_of_an_interrupted_backup_are_cleaned_at_start(daemon):
    daemon.cli("vm", "create", "crash", "--memory", "128M")
    good = backup(daemon, "crash")
    pool_dir = daemon.api("GET", "/v1/pools/backup")["path"]
    # What a vireod killed during a backup (or a delete) leaves behind: a
    # partial directory, a half-deleted one (both named with this host's id)
    # and the storage daemon it ran.
    with open(os.path.join(daemon.state_dir, "host-id")) as f:
        host = f.read().strip()
    for leftover in (f".partial-{host}-crash-20260101-000000-0000", f".deleting-{host}-crash-x"):
        os.makedirs(os.path.join(pool_dir, leftover))
        with open(os.path.join(pool_dir, leftover, "disk0.qcow2"), "wb") as f:
            f.write(b"half")
    work = os.path.join(daemon.run_dir, "vms", daemon.vm("crash")["id"])
    os.makedirs(work, exist_ok=True)
    pidfile = os.path.join(work, "backup-qsd.pid")
    qsd = subprocess.Popen(["qemu-storage-daemon", "--pidfile", pidfile],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.exists(pidfile), 10, what="the storage daemon's pidfile")
        assert [b["id"] for b in daemon.api("GET", "/v1/backups")] == [good["id"]]
        daemon.stop()
        daemon.start()
        assert qsd.wait(timeout=10) == -9  # killed by vireod, by its PID
        assert sorted(os.listdir(pool_dir)) == [good["id"]]
        assert not os.path.exists(pidfile)
        assert [b["id"] for b in daemon.api("GET", "/v1/backups")] == [good["id"]]
        daemon.cli("backup", "verify", good["id"])
    finally:
        if qsd.poll() is None:
            qsd.kill()
            qsd.wait(timeout=10)


def disk_bitmaps(path):
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    data = json.loads(out).get("format-specific", {}).get("data", {})
    return sorted(b["name"] for b in data.get("bitmaps", []))


def vm_task(daemon, method, path, body=None):
    doc = daemon.api(method, path, body, expect=202)
    task = daemon.wait_task(doc["task"], timeout=120)
    assert task["state"] == "succeeded", task


def test_another_volume_in_a_slot_makes_the_next_backup_full(daemon):
    daemon.cli("vm", "create", "swap", "--memory", "128M")
    vm_task(daemon, "POST", "/v1/vms/swap/disks", {"size_bytes": 16 * MiB})
    full = backup(daemon, "swap")
    vm_id = daemon.vm("swap")["id"]
    # The bitmap is named after the VM.
    assert disk_bitmaps(disk_path(daemon, "swap", 0)) == [f"vireo-backup-{vm_id}"]
    old = disk_path(daemon, "swap", 1)
    # A volume of the same size takes slot 1: an incremental would mix the two.
    vm_task(daemon, "DELETE", "/v1/vms/swap/disks/1")
    vm_task(daemon, "POST", "/v1/vms/swap/disks", {"size_bytes": 16 * MiB})
    disks = daemon.api("GET", "/v1/vms/swap/disks")["disks"]
    assert disks[1]["slot"] == full["disks"][1]["slot"] and disks[1]["path"] != old, disks
    qemu_io(disks[1]["path"], "write -P 0x33 0 1M")
    after = backup(daemon, "swap", incremental=True)
    assert after["kind"] == "full" and "disks changed" in after["reason"], after
    again = backup(daemon, "swap", incremental=True)
    assert again["kind"] == "incremental" and again["parent"] == after["id"], again


def test_a_snapshot_revert_after_a_backup_drops_the_bitmaps(daemon):
    """qemu-img (and QEMU, for a memory snapshot: test_debian_guest.py)
    refuses to revert a qcow2 file that has a dirty bitmap: every VM ever
    backed up could not be reverted. The revert drops the backup bitmaps
    (they would be wrong after it) and the next backup is full."""
    daemon.cli("vm", "create", "rev", "--memory", "128M")
    vm_id = daemon.vm("rev")["id"]
    backup(daemon, "rev")
    disk = disk_path(daemon, "rev")
    assert disk_bitmaps(disk) == [f"vireo-backup-{vm_id}"]
    vm_task(daemon, "POST", "/v1/vms/rev/snapshots", {"name": "s1"})
    qemu_io(disk, "write -P 0x44 0 1M")
    vm_task(daemon, "POST", "/v1/vms/rev/snapshots/s1/revert", {})
    p = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x44 0 1M", disk],
                       capture_output=True, text=True, timeout=60)
    assert "Pattern verification failed" in p.stdout, p  # the write is gone
    assert disk_bitmaps(disk) == []
    after = backup(daemon, "rev", incremental=True)
    assert after["kind"] == "full", after
    assert disk_bitmaps(disk) == [f"vireo-backup-{vm_id}"]


def test_records_that_point_outside_or_lost_their_parent(daemon):
    daemon.cli("vm", "create", "rec", "--memory", "128M")
    full = backup(daemon, "rec")
    qemu_io(disk_path(daemon, "rec"), "write -P 0x44 0 1M")
    inc = backup(daemon, "rec", incremental=True)
    assert inc["kind"] == "incremental"
    pool_dir = daemon.api("GET", "/v1/pools/backup")["path"]
    # A crafted record naming a file outside its backup is refused.
    victim = os.path.join(os.path.dirname(pool_dir), "victim.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", victim, "1M"], check=True)
    crafted = "rec-20000101-000000-0bad"
    os.makedirs(os.path.join(pool_dir, crafted))
    with open(os.path.join(backup_dir(daemon, full), "backup.json")) as f:
        record = json.load(f)
    record["id"] = crafted
    record["disks"][0]["file"] = "../../victim.qcow2"
    with open(os.path.join(pool_dir, crafted, "backup.json"), "w") as f:
        json.dump(record, f)
    assert crafted not in [b["id"] for b in daemon.api("GET", "/v1/backups")]
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/verify"),
                           ("POST", "/restore")):
        status, doc = daemon.request(method, f"/v1/backups/{crafted}{suffix}",
                                     {} if method == "POST" else None)
        assert status == 404, (method, status, doc)
    assert os.path.exists(victim)
    # A backup whose parent is gone exists, but cannot be restored: 409 naming it.
    moved = os.path.join(os.path.dirname(pool_dir), "moved-away")
    os.rename(backup_dir(daemon, full), moved)
    try:
        status, doc = daemon.request("POST", f"/v1/backups/{inc['id']}/restore",
                                     {"as": "rec-copy"})
        assert status == 409 and full["id"] in doc["error"]["message"], doc
        assert doc["error"]["code"] == "invalid-state"
    finally:
        os.rename(moved, backup_dir(daemon, full))
    restore(daemon, inc["id"], **{"as": "rec-copy"})


def edit_record(daemon, b, edit):
    """Rewrites backup b's record (backup.json) with edit(record)."""
    path = os.path.join(backup_dir(daemon, b), "backup.json")
    with open(path) as f:
        record = json.load(f)
    edit(record)
    with open(path, "w") as f:
        json.dump(record, f)


def test_old_records_restore_as_new_whatever_their_disks_name(fake_daemon):
    """A restore as a new VM gives every disk a new volume: the record's disk
    names do not matter, so a record written when specs held paths restores
    even when a disk path is no volume's file (moved, another host)."""
    d = fake_daemon
    d.cli("vm", "create", "oldrec", "--memory", "64M")
    b = backup(d, "oldrec")

    def bare_paths(record):
        disk = record["spec"]["disks"][0]
        del disk["volume"], disk["slot"]
        disk["path"] = "/srv/elsewhere/oldrec-disk0.qcow2"
    edit_record(d, b, bare_paths)
    restore(d, b["id"], **{"as": "oldrec-copy"})
    vm = d.vm("oldrec-copy")
    [disk] = vm["disks"]
    assert disk["volume"].startswith("default/oldrec-copy-disk") and disk["owned"], disk
    assert disk["path"] and os.path.exists(disk["path"]), disk
    ok, out = images_identical(disk_path(d, "oldrec"), disk["path"])
    assert ok, out


def test_records_boot_only_an_images_kernel(fake_daemon):
    """A record's kernel or initrd given as a volume is refused for a restore
    as a new VM: a crafted record would otherwise boot any volume (another
    VM's disk) as the new VM's kernel."""
    d = fake_daemon
    d.cli("vm", "create", "krec", "--memory", "64M")
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "victim", "size_bytes": MiB})
    b = backup(d, "krec")
    for key in ("kernel", "initrd"):
        def boot_volume(record):
            record["spec"][key] = {"volume": "default/victim"}
        edit_record(d, b, boot_volume)
        status, doc = d.request("POST", f"/v1/backups/{b['id']}/restore", {"as": "krec-copy"})
        assert status == 409, (key, status, doc)
        msg = doc["error"]["message"]
        assert key in msg and "default/victim" in msg and "image" in msg, msg
        assert d.request("GET", "/v1/vms/krec-copy")[0] == 404
        def boot_image(record):
            record["spec"][key] = {"image": "default"}
        edit_record(d, b, boot_image)
    restore(d, b["id"], **{"as": "krec-copy"})
    assert d.vm("krec-copy")["kernel"] == {"image": "default"}
