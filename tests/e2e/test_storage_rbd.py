"""rbd pools against a real test Ceph (ceph_harness, one per session): a
vireod in the Ceph's namespace makes a pool of a Ceph pool, and its volumes
are RBD images (made, measured, resized, deleted in the cluster); the key
is kept in a 0600 file and shown nowhere; bad monitors, pool, user or key
answer 400 and leave nothing behind."""

import glob
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import threading
import time

import pytest

from vireo_harness import Daemon, stop_process, wait_until

MiB = 1 << 20


@pytest.fixture(scope="module")
def rbd_env(ceph, tmp_path_factory):
    """A Ceph pool `vireo-vms` with a cephx user `vireo` limited to it, its
    keyring, and a vireod beside the Ceph (its namespace), whose fault points
    (VIREO_TEST_MIGRATE_FAULT, VIREO_TEST_STORE_FAULTS: a file per point,
    taken once) a test arms."""
    ceph.create_pool("vireo-vms")
    keyring = str(tmp_path_factory.mktemp("rbd") / "ceph.client.vireo.keyring")
    key = ceph.add_user("vireo", "vireo-vms", keyring)
    d = Daemon(netns=ceph.netns,
               env={"VIREO_TEST_MIGRATE_FAULT": str(tmp_path_factory.mktemp("faults")),
                    "VIREO_FAKE_FAULTS": str(tmp_path_factory.mktemp("holds")),
                    "VIREO_TEST_STORE_FAULTS": str(tmp_path_factory.mktemp("store-faults"))})
    try:
        yield d, keyring, key
    finally:
        d.cleanup()


def images(ceph):
    return json.loads(ceph.rbd("ls", "--format", "json", "vireo-vms") or "[]")


def image_size(ceph, name):
    return json.loads(ceph.rbd("info", "--format", "json", f"vireo-vms/{name}"))["size"]


def parent_of(ceph, name):
    """The clone's parent as Ceph reports it: (pool, image, snapshot), or None."""
    p = json.loads(ceph.rbd("info", "--format", "json", f"vireo-vms/{name}")).get("parent")
    return (p["pool"], p["image"], p["snapshot"]) if p else None


def rbd_backup(d, vm, **body):
    """A backup of vm (its task waited for); its document."""
    task = d.wait_task(d.api("POST", f"/v1/vms/{vm}/backups", body, expect=202)["task"],
                       timeout=300)
    assert task["state"] == "succeeded", task
    return d.api("GET", f"/v1/backups/{task['message']}")


def rbd_snaps(ceph, name):
    return [s["name"] for s in
            json.loads(ceph.rbd("snap", "ls", "--format", "json", f"vireo-vms/{name}"))]


def test_iso_on_rbd_boots_two_vms_and_changes_while_running(ceph, rbd_env, tmp_path):
    """An ISO imported (or uploaded) into an rbd pool stays raw as an RBD
    image (content iso); two VMs have it in their drives at once (read-only: no exclusive
    lock; the key by file): one from its start, the other by media changes
    while it runs, and boots the installer from it; its delete is refused
    while a VM has it inserted."""
    from test_iso_install import ISO, error_of, tiny_iso
    if not os.path.exists(ISO):
        pytest.skip(f"needs the installer ISO {ISO} (make image)")
    started = "vireo-installer: started"
    d, keyring, key = rbd_env
    d.cli("pool", "create", "cephiso", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    d.cli("volume", "import", "cephiso/inst-iso", ISO)
    vol = d.api("GET", "/v1/pools/cephiso/volumes/inst-iso")
    assert vol["content"] == "iso" and vol["format"] == "raw", vol
    assert vol["rbd_image"] == "vireo-vms/inst-iso" and "inst-iso" in images(ceph), vol
    assert image_size(ceph, "inst-iso") == os.path.getsize(ISO)
    listed = {v["key"]: v for v in d.api("GET", "/v1/volumes")["volumes"]}
    assert listed["cephiso/inst-iso"]["content"] == "iso"
    # Uploaded (the data route): the same.
    d.cli("volume", "import", "cephiso/up-iso", tiny_iso(str(tmp_path / "up.iso")), "--upload")
    vol = d.api("GET", "/v1/pools/cephiso/volumes/up-iso")
    assert vol["content"] == "iso" and vol["rbd_image"] == "vireo-vms/up-iso", vol
    d.task_ok("DELETE", "/v1/pools/cephiso/volumes/up-iso")

    # cd2 boots the default image with the ISO in its drive (its QEMU holds
    # it open throughout); cd1, blank with an empty drive, waits in its
    # firmware until the ISO goes in while it runs (QMP media change
    # through the rbd driver), out and in again, and its reboot boots it.
    from vireo_harness import BOOT_MARKER
    d.cli("vm", "create", "cd2", "--memory", "128M", "--cdrom", "cephiso/inst-iso")
    d.cli("vm", "create", "cd1", "--blank", "--disk-size", "1G", "--memory", "384M",
          "--cdrom", "none", "--boot", "cdrom,disk")
    for vm in ("cd2", "cd1"):
        d.cli("vm", "start", vm)
        d.qemu_pids.add(d.vm(vm)["pid"])
    with open(f"/proc/{d.vm('cd2')['pid']}/cmdline", "rb") as f:
        argv = f.read().decode(errors="replace")
    assert '"driver":"rbd"' in argv and "inst-iso" in argv and key not in argv, argv
    d.wait_console("cd2", BOOT_MARKER, timeout=300)
    d.cli("vm", "cdrom", "insert", "cd1", "cephiso/inst-iso")
    d.cli("vm", "cdrom", "eject", "cd1")
    assert d.vm("cd1")["cdrom"] == {}
    d.cli("vm", "cdrom", "insert", "cd1", "cephiso/inst-iso")
    assert d.vm("cd1")["cdrom"] == {"volume": "cephiso/inst-iso"}
    assert started not in d.console_log("cd1")
    d.cli("vm", "reboot", "cd1")
    d.wait_console("cd1", started, timeout=300)
    assert d.vm("cd2")["state"] == "running"  # both had it open at once
    status, msg = error_of(d.request("DELETE", "/v1/pools/cephiso/volumes/inst-iso"))
    assert status == 409 and "'cd" in msg, (status, msg)

    for vm in ("cd1", "cd2"):  # cd1's installer may have ended (powered off)
        d.cli("vm", "stop", vm, "--force", check=d.vm(vm)["state"] == "running")
        d.cli("vm", "delete", vm)
    # Killed QEMUs' watches of a shared ISO are waited out (Ceph's 30 s),
    # never blocklisted: an address seen at a start may be another VM's.
    wait_until(lambda: not json.loads(ceph.rbd("status", "--format", "json",
                                                "vireo-vms/inst-iso")).get("watchers"),
               120, what="the killed QEMUs' watches of the ISO gone")
    d.task_ok("DELETE", "/v1/pools/cephiso/volumes/inst-iso")
    assert "inst-iso" not in images(ceph)
    d.api("DELETE", "/v1/pools/cephiso")


BASE = "vireo.image.default"  # the default image's base in the Ceph pool


def test_rbd_pool_volumes_are_rbd_images(ceph, rbd_env):
    d, keyring, key = rbd_env
    out = d.cli("pool", "create", "ceph1", "--type", "rbd", "--monitors", ceph.monitors,
                "--pool", "vireo-vms", "--user", "vireo", "--keyring", keyring).stdout
    assert "ceph pool:" in out and "vireo-vms" in out and key not in out
    pool = d.api("GET", "/v1/pools/ceph1")
    assert pool["type"] == "rbd"
    assert pool["rbd"] == {"monitors": ceph.monitors, "pool": "vireo-vms", "user": "vireo"}
    # Capacity from the cluster (the OSD's 10 GiB file), not the state directory's disk.
    df = ceph.ceph("df")["stats"]
    assert pool["capacity_bytes"] == df["total_bytes"]
    assert 0 < pool["available_bytes"] <= pool["capacity_bytes"]
    # The key: in a 0600 file of the pool's own, in no answer.
    key_file = os.path.join(d.state_dir, "rbd", "ceph1", "key")
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    with open(key_file) as f:
        assert f.read().strip() == key
    assert key not in json.dumps(d.api("GET", "/v1/pools"))

    d.task_ok("POST", "/v1/pools/ceph1/volumes", {"name": "data1", "size_bytes": 64 * MiB})
    assert images(ceph) == ["data1"]
    assert image_size(ceph, "data1") == 64 * MiB
    vol = d.api("GET", "/v1/pools/ceph1/volumes/data1")
    assert vol["format"] == "raw" and vol["rbd_image"] == "vireo-vms/data1"
    assert vol["virtual_size_bytes"] == 64 * MiB
    assert vol["allocation_bytes"] == 0  # thin: nothing written yet
    # Written from outside: the allocation is the cluster's.
    ceph.ns("rbd", "-c", ceph.conf, "bench", "--io-type", "write", "--io-total", "4M",
            "--io-size", "4M", "vireo-vms/data1", timeout=60)
    assert d.api("GET", "/v1/pools/ceph1/volumes/data1")["allocation_bytes"] >= 4 * MiB

    d.task_ok("POST", "/v1/pools/ceph1/volumes/data1/resize", {"size_bytes": 96 * MiB})
    assert image_size(ceph, "data1") == 96 * MiB
    assert d.api("GET", "/v1/pools/ceph1/volumes/data1")["virtual_size_bytes"] == 96 * MiB

    # File-volume operations are refused with a 400, nothing made: a clone
    # from or into the rbd pool, a download of an RBD image.
    d.api("POST", "/v1/pools/ceph1/volumes/data1/clone", {"target": "default/c1"}, expect=400)
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "small", "size_bytes": MiB})
    status, doc = d.request("POST", "/v1/pools/default/volumes/small/clone",
                            {"target": "ceph1/c2"})
    assert status == 400 and "rbd pool" in doc["error"]["message"], doc
    status, doc = d.request("GET", "/v1/pools/ceph1/volumes/data1/data")
    assert status == 400 and "rbd pool" in doc["error"]["message"], doc
    assert images(ceph) == ["data1"]
    assert not os.path.exists(os.path.join(d.state_dir, "rbd", "ceph1", "c2.raw"))
    d.task_ok("DELETE", "/v1/pools/default/volumes/small")

    # A name taken: refused before any image is made.
    d.api("POST", "/v1/pools/ceph1/volumes", {"name": "data1", "size_bytes": MiB}, expect=409)
    assert images(ceph) == ["data1"]
    # An import: a disk file converted into a new RBD image, byte for byte.
    disk = os.path.join(d.state_dir, "images", "default", "disk.raw")
    d.task_ok("POST", "/v1/pools/ceph1/volumes", {"name": "imp", "import_path": disk})
    assert image_size(ceph, "imp") == os.path.getsize(disk)
    exported = str(ceph.tmp) + "/imp.raw"
    ceph.ns("rbd", "-c", ceph.conf, "export", "vireo-vms/imp", exported, timeout=60)
    with open(disk, "rb") as a, open(exported, "rb") as b:
        assert a.read() == b.read()
    os.unlink(exported)
    d.task_ok("DELETE", "/v1/pools/ceph1/volumes/imp")

    d.task_ok("DELETE", "/v1/pools/ceph1/volumes/data1")
    assert images(ceph) == []
    assert d.api("GET", "/v1/volumes?pool=ceph1")["volumes"] == []
    d.api("DELETE", "/v1/pools/ceph1")
    assert not os.path.exists(os.path.join(d.state_dir, "rbd", "ceph1"))


def test_rbd_pool_bad_input_leaves_nothing(ceph, rbd_env, tmp_path):
    d, keyring, key = rbd_env
    good = {"name": "bad", "type": "rbd", "monitors": ceph.monitors, "pool": "vireo-vms",
            "user": "vireo", "keyring": keyring}
    wrong_key = str(tmp_path / "wrong.keyring")
    with open(wrong_key, "w") as f:
        f.write("[client.vireo]\n\tkey = AQBGgBNrAAAAABAA0pJ5nOBC6LGzJEjmQqkE3w==\n")
    no_key = str(tmp_path / "empty.keyring")
    with open(no_key, "w") as f:
        f.write("[client.other]\n[client.vireo]\n")
    cases = [
        ({"monitors": "not-an-ip"}, "monitors"),
        ({"monitors": "127.0.0.1,"}, "monitors"),
        ({"pool": ".hidden"}, "pool"),
        ({"user": "client.vireo"}, "user"),
        ({"keyring": "relative.keyring"}, "keyring"),
        ({"keyring": str(tmp_path / "missing")}, "keyring"),
        ({"keyring": no_key}, "keyring"),
        ({"path": "/tmp"}, "path"),
        # The cluster says no: an unknown pool, a wrong key, no monitor there.
        ({"pool": "no-such-pool"}, "no-such-pool"),
        ({"keyring": wrong_key}, "keyring"),
        ({"monitors": "127.0.0.1:1"}, "127.0.0.1:1"),
    ]
    for change, named in cases:
        body = {**good, **change}
        status, doc = d.request("POST", "/v1/pools", body)[:2]
        assert status == 400, (change, status, doc)
        assert named in doc["error"]["message"], (change, doc)
        assert key not in doc["error"]["message"]
    names = [p["name"] for p in d.api("GET", "/v1/pools")["pools"]]
    assert "bad" not in names
    assert not os.path.exists(os.path.join(d.state_dir, "rbd", "bad"))
    # The CLI needs all four.
    p = d.cli("pool", "create", "bad", "--type", "rbd", "--monitors", ceph.monitors, check=False)
    assert p.returncode != 0 and "--keyring" in p.stderr

    # A volume create cut short by vireod's crash (the RBD image made, its
    # document not saved) leaves no image: the restarted vireod's sweep
    # removes the one the create marked as that volume's. An image of the
    # name that was in the way (another client's, unmarked) is kept.
    d.cli("pool", "create", "crash", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    ceph.rbd("create", "--size", "1M", "vireo-vms/inway")
    status, doc = d.request("POST", "/v1/pools/crash/volumes", {"name": "inway",
                                                               "size_bytes": MiB})[:2]
    if status == 202:
        doc = d.wait_task(doc["task"])
        assert doc["state"] == "failed", doc
    else:
        assert status in (400, 409), doc
    assert "inway" in images(ceph)
    open(os.path.join(d.env["VIREO_TEST_MIGRATE_FAULT"], "rbd-volume-exit-before-save"),
         "w").close()
    d.request("POST", "/v1/pools/crash/volumes", {"name": "half", "size_bytes": MiB})
    d.proc.wait(timeout=60)
    assert "half" in images(ceph)  # made, not recorded
    # A start whose store cannot say whether the volume's document exists
    # (a fault point: its read fails as an etcd that does not answer does)
    # keeps the image and the intent; the next start removes the image.
    read_fails = os.path.join(d.env["VIREO_TEST_MIGRATE_FAULT"], "sweep-owner-read-fails")
    open(read_fails, "w").close()
    d.start()
    assert not os.path.exists(read_fails)  # taken by the sweep's read
    assert "half" in images(ceph), d.log()
    assert ("sweep: kept the files (and RBD images) of intents/volumes/crash/half: the store "
            "cannot say") in d.log()
    assert "removed RBD image of" not in d.log()
    d.stop()
    d.start()
    assert "half" not in images(ceph), d.log()
    assert "removed RBD image of" in d.log()
    assert d.request("GET", "/v1/pools/crash/volumes/half")[0] == 404
    ceph.rbd("rm", "vireo-vms/inway")
    d.api("DELETE", "/v1/pools/crash")


def test_linked_clones_share_one_protected_base(ceph, rbd_env):
    """VMs made from an image into an rbd pool get RBD clones of one base
    image (the image's disk imported once, with a protected snapshot), also
    when their creates race; the image cannot be deleted while clones of it
    exist (the answer names them); --full-clone still copies."""
    d, keyring, key = rbd_env
    d.cli("pool", "create", "ceph3", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    assert BASE not in images(ceph)
    docs = [d.api("POST", "/v1/vms", {"name": f"lc{i}", "memory_mib": 64, "pool": "ceph3"},
                  expect=202) for i in range(3)]
    for doc in docs:
        task = d.wait_task(doc["task"])
        assert task["state"] == "succeeded", task
    assert sorted(images(ceph)) == ["lc0-disk0", "lc1-disk0", "lc2-disk0", BASE]
    snaps = json.loads(ceph.rbd("snap", "ls", "--format", "json", f"vireo-vms/{BASE}"))
    assert [s["name"] for s in snaps] == ["base"]
    info = json.loads(ceph.rbd("info", "--format", "json", f"vireo-vms/{BASE}@base"))
    assert info["protected"] == "true"
    image_bytes = os.path.getsize(os.path.join(d.state_dir, "images", "default", "disk.raw"))
    for i in range(3):
        assert parent_of(ceph, f"lc{i}-disk0") == ("vireo-vms", BASE, "base")
        vol = d.api("GET", f"/v1/pools/ceph3/volumes/lc{i}-disk0")
        assert vol["image"] == "default" and vol["format"] == "raw"
        assert vol["rbd_parent"] == f"vireo-vms/{BASE}@base"
        assert vol["virtual_size_bytes"] == image_bytes
        assert vol["allocation_bytes"] == 0  # its own objects: none written yet
    # The image stays while clones of it exist; the answer names them.
    status, doc = d.request("DELETE", "/v1/images/default")
    assert status == 409, doc
    assert "ceph3/lc0-disk0" in doc["error"]["message"], doc
    assert BASE in images(ceph)
    # --disk-size grows the clone; --full-clone is a copy with no parent.
    d.cli("vm", "create", "lcbig", "--memory", "64M", "--pool", "ceph3", "--disk-size",
          str(image_bytes + 8 * MiB))
    assert image_size(ceph, "lcbig-disk0") == image_bytes + 8 * MiB
    d.cli("vm", "create", "fc", "--memory", "64M", "--pool", "ceph3", "--full-clone")
    assert parent_of(ceph, "fc-disk0") is None
    assert d.api("GET", "/v1/pools/ceph3/volumes/fc-disk0")["image"] is None
    # Snapshots of a stopped VM on RBD: an RBD snapshot of each disk, disks only.
    d.task_ok("POST", "/v1/vms/lc1/snapshots", {"name": "off1"})
    assert rbd_snaps(ceph, "lc1-disk0") == ["off1"]
    # An RBD snapshot left by a create that crashed before its document was
    # saved does not block that name: the next create replaces it.
    ceph.rbd("snap", "create", "vireo-vms/lc1-disk0@left1")
    d.task_ok("POST", "/v1/vms/lc1/snapshots", {"name": "left1"})
    assert rbd_snaps(ceph, "lc1-disk0") == ["off1", "left1"]
    assert "removed leftover RBD snapshot vireo-vms/lc1-disk0@left1" in d.log()
    status, doc = d.request("POST", "/v1/vms/lc1/snapshots", {"name": "m1", "memory": True})
    assert status == 400 and "memory" in doc["error"]["message"], doc
    # A VM with a qcow2 disk beside its RBD one: refused, naming the disk.
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "q1", "size_bytes": MiB})
    d.task_ok("POST", "/v1/vms/lc0/disks", {"volume": "default/q1"})
    status, doc = d.request("POST", "/v1/vms/lc0/snapshots", {"name": "mixed"})
    assert status == 400 and "default/q1" in doc["error"]["message"], doc
    assert rbd_snaps(ceph, "lc0-disk0") == []
    # A backup too: its disks would have no one instant.
    status, doc = d.request("POST", "/v1/vms/lc0/backups", {})
    assert status == 400 and "default/q1" in doc["error"]["message"], doc
    assert rbd_snaps(ceph, "lc0-disk0") == [] and d.api("GET", "/v1/backups?vm=lc0") == []
    d.task_ok("DELETE", "/v1/vms/lc0/disks/1")
    d.task_ok("DELETE", "/v1/pools/default/volumes/q1")
    # A stopped VM's backup: a full export of its RBD snapshot, which stays
    # as the next backup's base (one a crashed backup left is removed); with
    # that snapshot removed (by hand), an incremental one is full, says why.
    ceph.rbd("snap", "create", "vireo-vms/lc2-disk0@vireo.backup.lc2-crashed")
    b1 = rbd_backup(d, "lc2")
    assert b1["kind"] == "full" and b1["vm_running"] is False, b1
    assert rbd_snaps(ceph, "lc2-disk0") == [f"vireo.backup.{b1['id']}"]
    ceph.rbd("snap", "rm", f"vireo-vms/lc2-disk0@vireo.backup.{b1['id']}")
    b2 = rbd_backup(d, "lc2", incremental=True)
    assert b2["kind"] == "full" and "no longer has" in b2["reason"], b2
    assert rbd_snaps(ceph, "lc2-disk0") == [f"vireo.backup.{b2['id']}"]
    # Restored over the original (stopped) VM, all or nothing: each RBD
    # image written over behind an undo snapshot. A failure after the
    # first write (a fault point) rolls the disk back to what it held (a
    # pattern written after the backup); then the restore brings back the
    # backup's data, byte for byte. The undo snapshot goes either way.
    disk = f"rbd:vireo-vms/lc2-disk0:conf={ceph.conf}"
    backup_snap = f"rbd:vireo-vms/lc2-disk0@vireo.backup.{b2['id']}:conf={ceph.conf}"

    def qemu_io(cmd):
        p = ceph.ns("qemu-io", "-f", "raw", "-c", cmd, disk, timeout=60, check=False)
        return p.stdout + p.stderr

    assert "wrote 1048576" in qemu_io("write -P 0xab 0 1M")
    open(os.path.join(d.env["VIREO_TEST_MIGRATE_FAULT"], "rbd-restore-fail-after-write"),
         "w").close()
    task = d.wait_task(d.api("POST", f"/v1/backups/{b2['id']}/restore", {}, expect=202)["task"],
                       timeout=120)
    assert task["state"] == "failed" and "test fault" in task["error"]["message"], task
    out = qemu_io("read -P 0xab 0 1M")
    assert "read 1048576" in out and "verification failed" not in out, out
    assert rbd_snaps(ceph, "lc2-disk0") == [f"vireo.backup.{b2['id']}"]
    assert "every disk rolled back" in d.log()
    # vireod dying after a disk was written leaves it the backup's and the
    # undo snapshot: the VM's next start rolls the disk back before QEMU
    # runs (the pattern again, read once QEMU is gone), the snapshot goes.
    open(os.path.join(d.env["VIREO_TEST_MIGRATE_FAULT"], "rbd-restore-exit-after-write"),
         "w").close()
    d.request("POST", f"/v1/backups/{b2['id']}/restore", {})
    d.proc.wait(timeout=120)
    assert "vireo.restore-undo" in rbd_snaps(ceph, "lc2-disk0")
    # The mark is in the VM's document (which every host of a cluster
    # reads, and which moves with the VM), not in this host's files.
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    marked = [json.loads(v).get("spec", {}).get("name") for (v,) in db.execute(
        "SELECT value FROM documents WHERE key LIKE 'vms/%' AND value LIKE "
        "'%\"rbd_restore_undo\":true%'")]
    db.close()
    assert marked == ["lc2"], marked
    assert not glob.glob(os.path.join(d.state_dir, "vms", "*", "rbd-restore-undo"))
    d.start()
    d.cli("vm", "start", "lc2")
    d.cli("vm", "stop", "lc2", "--force")
    assert "a restore over its disks was cut short" in d.log()
    out = qemu_io("read -P 0xab 0 1M")
    assert "read 1048576" in out and "verification failed" not in out, out
    assert rbd_snaps(ceph, "lc2-disk0") == [f"vireo.backup.{b2['id']}"]
    # Right after the forced stop (its QEMU's watch and lock not yet
    # expired): the dead client is blocklisted, the restore goes through
    # (it failed on a 10 s lock wait before).
    d.task_ok("POST", f"/v1/backups/{b2['id']}/restore", {})
    ceph.ns("qemu-img", "compare", "-f", "raw", "-F", "raw", backup_snap, disk, timeout=120)
    assert rbd_snaps(ceph, "lc2-disk0") == [f"vireo.backup.{b2['id']}"]
    assert d.vm("lc2")["state"] == "stopped"  # as the start above left it
    # Restored as a new VM into the rbd pool: a raw RBD image filled from
    # the chain opened by the names the restore checked (a json: spec
    # pinning each layer's backing, as a dir pool's copy does), never by a
    # backing name read from a header (qemu-img's calls logged here).
    wrap = d.wrap_tool("qemu-img", '#!/bin/sh\necho "$*" >> {dir}/calls\nexec {real} "$@"\n')
    d.task_ok("POST", f"/v1/backups/{b2['id']}/restore", {"as": "lc2r", "pool": "ceph3"})
    with open(os.path.join(wrap, "calls")) as f:
        calls = [c for c in f if "lc2r-disk0" in c or " info " in f" {c}"]
    converts = [c for c in calls if c.startswith("convert")]
    assert len(converts) == 1 and " json:" in converts[0], calls
    assert "-f qcow2" not in converts[0] and not [c for c in calls if "--backing-chain" in c
                                                   and "/backups/" in c], calls
    assert d.api("GET", "/v1/vms/lc2r")["disks"][0]["format"] == "raw"
    ceph.ns("qemu-img", "compare", "-f", "raw", "-F", "raw", backup_snap,
            f"rbd:vireo-vms/lc2r-disk0:conf={ceph.conf}", timeout=120)
    restore_over_a_shareable_rbd_disk(ceph, d)
    for b in (b1, b2):
        d.task_ok("DELETE", f"/v1/backups/{b['id']}")
    # A VM's delete takes its disks' RBD snapshots with them (lc1's off1).
    for vm in ("lc0", "lc1", "lc2", "lcbig", "fc", "lc2r"):
        d.cli("vm", "delete", vm)
    assert images(ceph) == [BASE]  # kept for the next clone
    # The pool's delete takes the bases without clones out of the Ceph pool.
    d.api("DELETE", "/v1/pools/ceph3")
    assert images(ceph) == []


def restore_over_a_shareable_rbd_disk(ceph, d):
    """A shareable RBD disk (ceph3/sh) of VMs ra and rb: while rb runs, a
    restore over ra is refused naming it (before, the disk was written
    under rb's QEMU); a restore held before it writes keeps both from
    starting (409 naming its task; before, their starts were queued and ran
    on the disk being written). One cut short by vireod's death leaves sh's
    mark naming ra: rb does not start (409), nor is the mark cleared by hand
    (ra's rollback would come under rb), until ra's start rolls sh back and
    removes it (before, rb started on the half-restored disk)."""
    d.task_ok("POST", "/v1/pools/ceph3/volumes", {"name": "sh", "size_bytes": 16 * MiB})
    d.cli("volume", "set", "ceph3/sh", "--shareable")
    for vm in ("ra", "rb"):
        d.cli("vm", "create", vm, "--memory", "64M", "--disk", "ceph3/sh")
    backup = rbd_backup(d, "ra")
    restore, volume = f"/v1/backups/{backup['id']}/restore", "/v1/pools/ceph3/volumes/sh"
    d.cli("vm", "start", "rb")
    d.qemu_pids.add(d.vm("rb")["pid"])
    task = d.wait_task(d.api("POST", restore, {}, expect=202)["task"], timeout=120)
    assert task["state"] == "failed", task
    assert "VM 'rb'" in task["error"]["message"] and "runs" in task["error"]["message"], task
    d.cli("vm", "stop", "rb", "--force")
    hold = os.path.join(d.env["VIREO_FAKE_FAULTS"], "backup_restore_write")
    open(hold + ".hold", "w").close()
    task = d.api("POST", restore, {}, expect=202)["task"]
    try:
        wait_until(lambda: os.path.exists(hold + ".held"), 120, what="the restore held")
        for vm in ("ra", "rb"):
            status, doc = d.request("POST", f"/v1/vms/{vm}/start")
            assert status == 409 and "being restored" in doc["error"]["message"], (vm, doc)
            assert task["id"] in doc["error"]["message"], doc
        assert d.api("GET", volume)["restore_incomplete"]["task"] == task["id"]
    finally:
        os.unlink(hold + ".hold")
        os.unlink(hold + ".held")
    assert d.wait_task(task, timeout=120)["state"] == "succeeded"
    assert d.api("GET", volume)["restore_incomplete"] is None
    open(os.path.join(d.env["VIREO_TEST_MIGRATE_FAULT"], "rbd-restore-exit-after-write"),
         "w").close()
    d.request("POST", restore, {})
    d.proc.wait(timeout=120)
    d.start()
    assert d.api("GET", volume)["restore_incomplete"]["vm_name"] == "ra"
    for method, path, body in (("POST", "/v1/vms/rb/start", None),
                               ("PATCH", volume, {"restore_incomplete": None})):
        status, doc = d.request(method, path, body)
        assert status == 409 and "VM 'ra'" in doc["error"]["message"], (path, doc)
        assert "cut short" in doc["error"]["message"], doc
    d.cli("vm", "start", "ra")
    d.qemu_pids.add(d.vm("ra")["pid"])
    d.cli("vm", "stop", "ra", "--force")
    assert d.api("GET", volume)["restore_incomplete"] is None
    assert "vireo.restore-undo" not in rbd_snaps(ceph, "sh")
    for vm in ("ra", "rb"):
        d.cli("vm", "delete", vm)
    d.task_ok("DELETE", f"/v1/backups/{backup['id']}")
    # A shareable image's dead watches are waited out, never blocklisted.
    wait_until(lambda: not json.loads(ceph.rbd("status", "--format", "json",
                                                "vireo-vms/sh")).get("watchers"),
               120, what="the killed QEMUs' watches of sh gone")
    d.task_ok("DELETE", volume)


def test_sweep_keeps_intent_while_ceph_is_down(ceph, rbd_env):
    """Two volume creates cut short by vireod's crash (their marked RBD
    images made, their documents not saved), and the restart's sweep finds
    Ceph not answering (the monitor stopped): the intents stay, the pool's
    Ceph asked once for both (one connection's timeout, not one per image),
    shown with their error by `pool show`; the pool's delete is refused
    naming them, a create of the name meanwhile too (409); the retries
    while Ceph is down log nothing each (one line when it answers again,
    with how long it did not); once the monitor answers the running vireod
    removes the images, so the name is usable again. A VM create cut short
    with two volumes of the pool: the sweep waits for Ceph once (the
    pool's), not once per volume, and keeps both."""
    d, keyring, key = rbd_env
    d.cli("pool", "create", "down", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    for vol in ("vmvol1", "vmvol2"):  # a VM create's, its VM never saved (the intent below)
        d.task_ok("POST", "/v1/pools/down/volumes", {"name": vol, "size_bytes": MiB})
    open(os.path.join(d.env["VIREO_TEST_MIGRATE_FAULT"], "rbd-volume-exit-before-save"),
         "w").close()
    d.request("POST", "/v1/pools/down/volumes", {"name": "orphan", "size_bytes": MiB})
    d.proc.wait(timeout=60)
    assert "orphan" in images(ceph)  # made, not recorded
    # A second such leftover (as a second crash, with no sweep between, leaves it).
    ceph.rbd("create", "--size", "1M", "vireo-vms/orphan2")
    ceph.rbd("image-meta", "set", "vireo-vms/orphan2", "vireo.volume", "down/orphan2")
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    with db:
        db.execute("INSERT INTO documents (key, mod_rev, create_rev, lease, value) SELECT "
                   "key || '2', mod_rev, create_rev, lease, replace(value, 'orphan', 'orphan2') "
                   "FROM documents WHERE key = 'intents/volumes/down/orphan'")
        vm_intent = json.dumps({"owner": "vms/0a1b2c3d-never-saved", "paths": [],
                                "volumes": ["down/vmvol1", "down/vmvol2"]})
        db.execute("INSERT INTO documents (key, mod_rev, create_rev, lease, value) SELECT "
                   "'intents/vms/0a1b2c3d-never-saved', mod_rev, create_rev, lease, ? "
                   "FROM documents WHERE key = 'intents/volumes/down/orphan'", (vm_intent,))
    db.close()
    mon = ceph.procs["mon.a"][0].pid
    stop_process(mon)  # every thread: the sweep must not reach it
    try:
        start_log = len(d.log())
        d.start(timeout=60)  # the sweep's try is bounded (10 s per Ceph call)
        kept_lines = [ln for ln in d.log()[start_log:].splitlines()
                      if "sweep: kept the RBD image of" in ln]
        assert len(kept_lines) == 2, d.log()
        assert len([ln for ln in kept_lines if "earlier in this sweep" in ln]) == 1, kept_lines
        vol_lines = [ln for ln in d.log()[start_log:].splitlines()
                     if "kept volume down/vmvol" in ln]
        assert len(vol_lines) == 2, d.log()  # both kept, Ceph asked for the first only
        assert "earlier in this sweep" in vol_lines[1], vol_lines
        db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
        try:
            kept = [k for (k,) in
                    db.execute("SELECT key FROM documents WHERE key LIKE 'intents/%'")]
        finally:
            db.close()
        assert {"intents/volumes/down/orphan", "intents/volumes/down/orphan2"} <= set(kept)
        shown = d.cli("pool", "show", "down").stdout
        assert shown.count("kept intent:") == 2 and "unreachable" in shown, shown
        status, doc = d.request("DELETE", "/v1/pools/down")[:2]
        assert status == 409 and "intents/volumes/down/orphan2" in doc["error"]["message"], doc
        status, doc = d.request("POST", "/v1/pools/down/volumes",
                                {"name": "orphan", "size_bytes": MiB}, timeout=90)[:2]
        assert status == 409 and "cannot be removed yet" in doc["error"]["message"], doc
        # Tried again at the checks (each waits out Ceph's timeout), not a line each.
        wait_until(lambda: sum(k["tries"] for k in
                               d.api("GET", "/v1/pools/down")["kept_intents"]) >= 4, 180,
                   interval=1, what="the kept intents' retries")
        assert len([ln for ln in d.log()[start_log:].splitlines()
                    if "sweep: kept the RBD image of" in ln]) == 2, d.log()[start_log:]
    finally:
        os.kill(mon, signal.SIGCONT)
    wait_until(lambda: not {"orphan", "orphan2"} & set(images(ceph)), 90, interval=0.5,
               what="the kept intents' images to go")
    assert "sweep: finished intents/volumes/down/orphan2" in d.log()
    assert re.search(r"the Ceph of pool 'down' answers again after \d+ s "
                     r"\(intents/volumes/down/orphan2? finished\)", d.log()), d.log()
    for vol in ("vmvol1", "vmvol2"):
        d.task_ok("DELETE", f"/v1/pools/down/volumes/{vol}")
    d.task_ok("POST", "/v1/pools/down/volumes", {"name": "orphan", "size_bytes": MiB})
    assert "orphan" in images(ceph)
    d.task_ok("DELETE", "/v1/pools/down/volumes/orphan")
    d.api("DELETE", "/v1/pools/down")


def test_kept_intent_a_retry_cannot_cure(ceph, rbd_env):
    """A leftover whose removal Ceph refuses (the pool's key file spoilt
    while vireod was down): kept as `permanent`, shown by `pool show`, not
    tried again at each check (one try in the log over several checks);
    the pool's delete is refused naming it, and with --force the record
    goes while the image stays in Ceph."""
    d, keyring, key = rbd_env
    d.cli("pool", "create", "badkey", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    open(os.path.join(d.env["VIREO_TEST_MIGRATE_FAULT"], "rbd-volume-exit-before-save"),
         "w").close()
    d.request("POST", "/v1/pools/badkey/volumes", {"name": "orphan3", "size_bytes": MiB})
    d.proc.wait(timeout=60)
    assert "orphan3" in images(ceph)
    key_file = os.path.join(d.state_dir, "rbd", "badkey", "key")
    with open(key_file, "w") as f:  # the secret's bytes changed, its header kept
        f.write(key[:20] + ("A" if key[20] != "A" else "B") + key[21:] + "\n")
    tried = "sweep: kept the RBD image of " + os.path.join(d.state_dir, "rbd", "badkey",
                                                            "orphan3.raw")
    d.start(timeout=60)
    assert d.log().count(tried) == 1, d.log()
    shown = d.cli("pool", "show", "badkey").stdout
    assert "intents/volumes/badkey/orphan3" in shown and "permanent" in shown, shown
    time.sleep(8)  # several checks of the rbd pools' thread (one every 2 s)
    assert d.log().count(tried) == 1  # not hammered
    status, doc = d.request("DELETE", "/v1/pools/badkey")[:2]
    assert status == 409 and "intents/volumes/badkey/orphan3" in doc["error"]["message"], doc
    d.cli("pool", "delete", "badkey", "--force")
    assert "sweep: dropped intents/volumes/badkey/orphan3" in d.log()
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    try:
        assert not db.execute("SELECT key FROM documents WHERE key LIKE "
                              "'intents/volumes/badkey/%'").fetchall()
    finally:
        db.close()
    assert "orphan3" in images(ceph)  # as the delete said: left in Ceph
    ceph.rbd("rm", "vireo-vms/orphan3")


def test_kept_intent_of_a_missing_ceph_pool(ceph, rbd_env):
    """A leftover whose Ceph pool is not found at the restart (renamed
    while vireod was down, the image in it): -ENOENT of the pool, not of
    the image, so the intent is kept as `permanent`, never finished while
    the image lives on; once the pool is back a create of the name removes
    the image."""
    d, keyring, key = rbd_env
    d.cli("pool", "create", "renamed", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    open(os.path.join(d.env["VIREO_TEST_MIGRATE_FAULT"], "rbd-volume-exit-before-save"),
         "w").close()
    d.request("POST", "/v1/pools/renamed/volumes", {"name": "orphan5", "size_bytes": MiB})
    d.proc.wait(timeout=60)
    ceph.ceph("osd", "pool", "rename", "vireo-vms", "vireo-vms-away")
    try:
        d.start(timeout=60)
        assert "sweep: kept the RBD image of " + os.path.join(
            d.state_dir, "rbd", "renamed", "orphan5.raw") in d.log(), d.log()
        pool = d.api("GET", "/v1/pools/renamed")
        assert [(k["intent"], k["failure"]) for k in pool["kept_intents"]] == [
            ("intents/volumes/renamed/orphan5", "permanent")], pool
    finally:
        ceph.ceph("osd", "pool", "rename", "vireo-vms-away", "vireo-vms")
    assert "orphan5" in images(ceph)  # what a dropped intent would have left unseen
    d.task_ok("POST", "/v1/pools/renamed/volumes", {"name": "orphan5", "size_bytes": MiB})
    assert "sweep: finished intents/volumes/renamed/orphan5" in d.log()
    d.task_ok("DELETE", "/v1/pools/renamed/volumes/orphan5")
    assert "orphan5" not in images(ceph)
    d.api("DELETE", "/v1/pools/renamed")


def test_kept_intent_of_an_image_in_use(ceph, rbd_env):
    """A leftover that a Ceph client still watches (`rbd watch`): the sweep
    keeps it as `busy` (logged "still in use", shown by `pool show` with
    its next try), not as Ceph being down; once the watcher is gone a
    create of the name removes it at once (not waiting for that try)."""
    d, keyring, key = rbd_env
    d.cli("pool", "create", "inuse", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    open(os.path.join(d.env["VIREO_TEST_MIGRATE_FAULT"], "rbd-volume-exit-before-save"),
         "w").close()
    d.request("POST", "/v1/pools/inuse/volumes", {"name": "orphan4", "size_bytes": MiB})
    d.proc.wait(timeout=60)
    watcher = subprocess.Popen(["ip", "netns", "exec", ceph.netns.name, "rbd", "-c", ceph.conf,
                                "watch", "vireo-vms/orphan4"], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: json.loads(ceph.rbd("status", "--format", "json",
                                               "vireo-vms/orphan4"))["watchers"], 60,
                   interval=0.5, what="rbd watch's watcher")
        d.start(timeout=60)
        assert "sweep: the RBD image of intents/volumes/inuse/orphan4 is still in use" \
            in d.log(), d.log()
        pool = d.api("GET", "/v1/pools/inuse")
        assert [(k["intent"], k["failure"], k["next_try_at"] is not None)
                for k in pool["kept_intents"]] == [
                    ("intents/volumes/inuse/orphan4", "busy", True)], pool
    finally:
        watcher.communicate(b"\n", timeout=60)  # rbd watch ends at a newline
    wait_until(lambda: not json.loads(ceph.rbd("status", "--format", "json",
                                                "vireo-vms/orphan4"))["watchers"], 60,
               interval=0.5, what="the watcher to go")
    d.task_ok("POST", "/v1/pools/inuse/volumes", {"name": "orphan4", "size_bytes": MiB})
    assert "sweep: finished intents/volumes/inuse/orphan4" in d.log()
    assert d.api("GET", "/v1/pools/inuse")["kept_intents"] == []
    d.task_ok("DELETE", "/v1/pools/inuse/volumes/orphan4")
    d.api("DELETE", "/v1/pools/inuse")


def test_image_delete_racing_vm_create(ceph, rbd_env, tmp_path):
    """An image's delete holds its name before it counts the image's users:
    a VM create from it while the delete removes its bases (held up here:
    the Ceph monitor stopped) is refused, so no VM keeps a disk of an image
    deleted under it (nor remakes a base after its delete)."""
    d, keyring, key = rbd_env
    d.cli("pool", "create", "ceph4", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    disk = str(tmp_path / "tiny.raw")
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", disk, "4M"], check=True)
    d.task_ok("POST", "/v1/images", {"name": "tiny", "import_path": disk})
    mon = ceph.procs["mon.a"][0].pid
    deleted = {}
    deleter = threading.Thread(
        target=lambda: deleted.update(answer=d.request("DELETE", "/v1/images/tiny")))
    stop_process(mon)  # every thread: the delete must wait on it
    try:
        deleter.start()
        time.sleep(0.5)  # the delete waits on the monitor now (bounded: 10 s)
        doc = d.api("POST", "/v1/vms", {"name": "race1", "memory_mib": 64, "image": "tiny"},
                    expect=202)
        task = d.wait_task(doc["task"], timeout=8)
    finally:
        os.kill(mon, signal.SIGCONT)
        deleter.join(timeout=60)
    assert task["state"] == "failed" and "being deleted" in task["error"]["message"], task
    status, answer = deleted["answer"]
    assert status in (200, 204), answer
    assert "tiny" not in [i["name"] for i in d.api("GET", "/v1/images")["images"]]
    d.api("DELETE", "/v1/pools/ceph4")


def test_vm_clone_on_rbd_linked_and_full(ceph, rbd_env):
    """vm clone of a VM whose disk is in an rbd pool, inside Ceph: linked
    (a protected RBD snapshot of the source's image and a clone of it) and
    full (a copy, no parent); the linked clone boots with the source's file,
    its writes do not reach the source, and the source, run again, writes
    its image past the snapshot; the source's disk cannot be deleted while
    the clone exists (a VM delete keeps it), and the snapshot goes with the
    clone."""
    from vireo_harness import BOOT_MARKER
    d, keyring, key = rbd_env
    d.cli("pool", "create", "cephcl", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    d.cli("vm", "create", "rsrc", "--memory", "256M", "--pool", "cephcl")
    # A linked clone of that name a crash cut short left its snapshot
    # (protected, no clone): stale, it is made again.
    stale = "vireo-vms/rsrc-disk0@vireo.clone.rlink-disk0"
    ceph.rbd("snap", "create", stale)
    ceph.rbd("snap", "protect", stale)
    d.cli("vm", "start", "rsrc")
    d.wait_console("rsrc", BOOT_MARKER, timeout=120)
    d.qemu_pids.add(d.vm("rsrc")["pid"])
    d.guest("rsrc", "echo rbd-clone-data > /root/mark; sync")
    d.cli("vm", "stop", "rsrc")
    # A dir target for an rbd disk is refused (made inside its own pool).
    status, doc = d.request("POST", "/v1/vms/rsrc/clone", {"name": "rx", "pool": "default"})
    assert status == 400 and "own pool" in doc["error"]["message"], doc

    d.cli("vm", "clone", "rsrc", "rlink", "--linked")
    d.cli("vm", "clone", "rsrc", "rlink2", "--linked")
    # A full copy a crash cut short left its image under its passing name:
    # the next copy of that name removes it (the name it would block is free).
    ceph.rbd("create", "--size", "1M", "vireo-vms/rfull-disk0.copy")
    d.cli("vm", "clone", "rsrc", "rfull")
    assert "rfull-disk0.copy" not in images(ceph)
    snap = "vireo.clone.rlink-disk0"
    assert parent_of(ceph, "rlink-disk0") == ("vireo-vms", "rsrc-disk0", snap)
    info = json.loads(ceph.rbd("info", "--format", "json", f"vireo-vms/rsrc-disk0@{snap}"))
    assert info["protected"] == "true"
    assert parent_of(ceph, "rfull-disk0") is None  # a whole copy
    vol = d.api("GET", "/v1/pools/cephcl/volumes/rlink-disk0")
    assert vol["backing_volume"] == "cephcl/rsrc-disk0" and vol["format"] == "raw", vol
    assert d.vm("rlink")["disks"][0]["volume"] == "cephcl/rlink-disk0"
    assert d.vm("rfull")["disks"][0]["volume"] == "cephcl/rfull-disk0"
    ceph.ns("qemu-img", "compare", "-f", "raw", "-F", "raw",
            f"rbd:vireo-vms/rsrc-disk0:conf={ceph.conf}",
            f"rbd:vireo-vms/rfull-disk0:conf={ceph.conf}", timeout=120)
    d.cli("vm", "delete", "rfull")
    assert "rfull-disk0" not in images(ceph)

    # The linked clone boots with the source's file; what it writes is its own.
    d.cli("vm", "start", "rlink")
    d.wait_console("rlink", BOOT_MARKER, timeout=120)
    d.qemu_pids.add(d.vm("rlink")["pid"])
    assert "rbd-clone-data" in d.guest("rlink", "cat /root/mark")
    d.guest("rlink", "echo clone-only > /root/own; sync")
    # The source runs again beside it and writes its own image.
    d.cli("vm", "start", "rsrc")
    d.wait_console("rsrc", BOOT_MARKER, count=2, timeout=120)
    d.qemu_pids.add(d.vm("rsrc")["pid"])
    assert "absent" in d.guest("rsrc", "cat /root/own 2>/dev/null || echo absent")
    d.guest("rsrc", "echo source-later > /root/later; sync")
    assert "absent" in d.guest("rlink", "cat /root/later 2>/dev/null || echo absent")
    # A linked clone deleted while the source runs (holding its image's
    # exclusive lock): its snapshot of the source's image goes too.
    d.cli("vm", "delete", "rlink2")
    assert "rlink2-disk0" not in images(ceph)
    assert "vireo.clone.rlink2-disk0" not in rbd_snaps(ceph, "rsrc-disk0")
    d.cli("vm", "stop", "rsrc")
    d.cli("vm", "stop", "rlink")
    # The clone reads its snapshot, not the source's image: the source's
    # disk still grows, is reverted to a VM snapshot and restored over
    # from a backup while the clone exists, the clone's parent untouched.
    d.task_ok("POST", "/v1/vms/rsrc/snapshots", {"name": "s1"})
    backup = rbd_backup(d, "rsrc")
    grown = image_size(ceph, "rsrc-disk0") + 64 * MiB
    d.task_ok("POST", "/v1/pools/cephcl/volumes/rsrc-disk0/resize", {"size_bytes": grown})
    assert image_size(ceph, "rsrc-disk0") == grown
    d.task_ok("POST", "/v1/vms/rsrc/snapshots/s1/revert", {})
    d.task_ok("POST", f"/v1/backups/{backup['id']}/restore", {})
    assert parent_of(ceph, "rlink-disk0") == ("vireo-vms", "rsrc-disk0", snap)

    # The source's disk backs the clone: its volume delete is refused; a
    # delete of the source VM keeps it, and its task's result says so.
    p = d.cli("vm", "delete", "rsrc")
    assert "warning: kept volume cephcl/rsrc-disk0: " in p.stderr, p.stderr
    task = next(t for t in d.api("GET", "/v1/tasks")["tasks"]
                if t["kind"] == "delete" and t["target"] == "rsrc")
    kept = task["result"]["kept_volumes"]
    assert [k["volume"] for k in kept] == ["cephcl/rsrc-disk0"], kept
    assert "linked clone" in kept[0]["reason"], kept
    assert "rsrc-disk0" in images(ceph)
    status, doc = d.request("DELETE", "/v1/pools/cephcl/volumes/rsrc-disk0")
    assert status == 409 and "linked clone" in doc["error"]["message"], doc
    # The clone's delete takes its snapshot of the source's image with it.
    d.cli("vm", "delete", "rlink")
    assert "rlink-disk0" not in images(ceph)
    assert [s for s in rbd_snaps(ceph, "rsrc-disk0") if s.startswith("vireo.clone.")] == []
    # A clone's snapshot a crash left behind its clone's removal does not
    # keep the source's image.
    ceph.rbd("snap", "create", "vireo-vms/rsrc-disk0@vireo.clone.gone-disk0")
    ceph.rbd("snap", "protect", "vireo-vms/rsrc-disk0@vireo.clone.gone-disk0")
    d.task_ok("DELETE", "/v1/pools/cephcl/volumes/rsrc-disk0")
    d.cli("pool", "delete", "cephcl")
    assert not {"rsrc-disk0", "rlink-disk0", "rfull-disk0"} & set(images(ceph))


def test_flatten_and_a_cancelled_full_copy(ceph, rbd_env):
    """A full copy of an rbd disk (vm clone) shows its bytes as it goes and
    a cancel leaves nothing in Ceph, nor does a vireod killed mid-copy
    (the restart's sweep); `volume flatten` makes a linked clone
    whole while its VM runs and writes (no parent, its snapshot of the
    source's image gone, the source's disk free to go) and a clone of the
    image's base (the base stays); refused, naming the volume, for one that
    is no clone and for a dir pool's; one whose document cannot be saved
    keeps its record and is finished when asked again."""
    from vireo_harness import BOOT_MARKER
    d, keyring, key = rbd_env
    d.cli("pool", "create", "cephfl", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    d.cli("vm", "create", "fsrc", "--memory", "256M", "--pool", "cephfl")
    hold = os.path.join(d.env["VIREO_FAKE_FAULTS"], "rbd_copy_chunk")
    open(hold + ".hold", "w").close()
    try:  # held after each object copied
        task = d.api("POST", "/v1/vms/fsrc/clone", {"name": "fcopy"}, expect=202)["task"]
        wait_until(lambda: os.path.exists(hold + ".held"), 120, what="the copy held")
        details = d.api("GET", f"/v1/tasks/{task['id']}")["details"]
        assert 0 < details["bytes_done"] < details["bytes_total"] == 64 * MiB, details
        assert "fcopy-disk0.copy" in images(ceph)
        # A clone queued behind it, cancelled: its name is free at once.
        queued = d.api("POST", "/v1/vms/fsrc/clone", {"name": "fqueued"}, expect=202)["task"]
        d.cli("task", "cancel", queued["id"])
        assert d.api("GET", f"/v1/tasks/{queued['id']}")["state"] == "cancelled"
        assert d.request("GET", "/v1/vms/fqueued")[0] == 404
        d.cli("task", "cancel", task["id"], "--async")
    finally:
        os.unlink(hold + ".hold")
    done = wait_until(lambda: (lambda t: t if t["state"] not in ("queued", "running") else None)(
        d.api("GET", f"/v1/tasks/{task['id']}")), 120, what="the cancelled copy")
    assert done["state"] == "cancelled", done
    assert not [i for i in images(ceph) if i.startswith("fcopy")], images(ceph)
    assert d.request("GET", "/v1/vms/fcopy")[0] == 404
    # A vireod killed midway leaves its partial copy: the restart's sweep
    # removes it (tried again while the dead client's watch still holds it).
    os.unlink(hold + ".held")
    open(hold + ".hold", "w").close()
    try:
        d.api("POST", "/v1/vms/fsrc/clone", {"name": "fcrash"}, expect=202)
        wait_until(lambda: os.path.exists(hold + ".held"), 120, what="the copy held")
        assert "fcrash-disk0.copy" in images(ceph)
        d.kill9()
    finally:
        os.unlink(hold + ".hold")
    d.start(timeout=60)
    wait_until(lambda: not [i for i in images(ceph) if i.startswith("fcrash")], 300,
               interval=2, what="the sweep to remove fcrash-disk0.copy")
    assert d.request("GET", "/v1/vms/fcrash")[0] == 404

    d.cli("volume", "create", "cephfl/plain", "--size", "8M")
    d.cli("volume", "create", "default/dplain", "--size", "8M")
    d.cli("volume", "clone", "default/dplain", "default/dlink", "--linked")
    for vol, words in (("cephfl/plain", "no linked clone"), ("default/dlink", "volume clone")):
        status, doc = d.request("POST", f"/v1/pools/{vol.replace('/', '/volumes/')}/flatten")
        assert status == 400 and vol in doc["error"]["message"] and \
            words in doc["error"]["message"], doc
    for vol in ("cephfl/plain", "default/dlink", "default/dplain"):
        d.cli("volume", "delete", vol)

    # Online: the clone's VM runs (its QEMU holds the exclusive lock and
    # does the flatten librbd hands it) and its guest reads and writes on.
    d.cli("vm", "clone", "fsrc", "flink", "--linked")
    d.cli("vm", "start", "flink")
    d.wait_console("flink", BOOT_MARKER, timeout=120)
    d.qemu_pids.add(d.vm("flink")["pid"])
    d.guest("flink", "echo before > /root/f; sync")
    # Its VM snapshot is an RBD snapshot of the clone: freed from the parent
    # too (vireo makes images with deep-flatten), so the parent's snapshot goes.
    d.task_ok("POST", "/v1/vms/flink/snapshots", {"name": "s1"})
    # Held at its first progress report: a migration is refused naming the
    # flatten (it would wait behind it), and a cancel is refused up front
    # (409): it could not stop what the VM's QEMU does (librbd ignores the
    # callback's answer for a remote flatten); the flatten finishes.
    hold = os.path.join(d.env["VIREO_FAKE_FAULTS"], "rbd_flatten_progress")
    open(hold + ".hold", "w").close()
    try:
        task = d.api("POST", "/v1/pools/cephfl/volumes/flink-disk0/flatten",
                     expect=202)["task"]
        wait_until(lambda: os.path.exists(hold + ".held"), 120, what="the flatten held")
        status, doc = d.request("POST", "/v1/vms/flink/migrate", {"to": "elsewhere"})
        assert status == 409 and task["id"] in doc["error"]["message"] and \
            "cephfl/flink-disk0" in doc["error"]["message"], doc
        p = d.cli("task", "cancel", task["id"], check=False)
        assert p.returncode != 0 and "cannot be cancelled now" in p.stderr and \
            "QEMU of the VM" in p.stderr, p.stderr
        status, doc = d.request("POST", f"/v1/tasks/{task['id']}/cancel")
        assert status == 409 and "librbd cannot stop it" in doc["error"]["message"], doc
        status, doc = d.request("GET", f"/v1/tasks/{task['id']}")
        assert status == 200 and doc["cancellable"] is False and doc["state"] == "running", doc
    finally:
        os.unlink(hold + ".hold")
    t = d.wait_task(task)
    os.unlink(hold + ".held")
    assert t["state"] == "succeeded" and not t["result"]["cancel_too_late"] and \
        "too late" not in t["message"], t
    assert t["result"]["was_clone_of"] == "cephfl/fsrc-disk0" and \
        t["result"]["snapshot_removed"], t
    assert parent_of(ceph, "flink-disk0") is None
    assert "vireo.clone.flink-disk0" not in rbd_snaps(ceph, "fsrc-disk0")
    assert d.api("GET", "/v1/pools/cephfl/volumes/flink-disk0")["backing_volume"] is None
    d.guest("flink", "echo after >> /root/f; sync")
    assert d.guest("flink", "cat /root/f").split() == ["before", "after"]
    # A clone made without deep-flatten whose VM has a snapshot: refused
    # (its snapshot would keep the parent's forever), nothing changed.
    d.cli("vm", "clone", "fsrc", "fold", "--linked")
    d.task_ok("POST", "/v1/vms/fold/snapshots", {"name": "s1"})
    ceph.rbd("feature", "disable", "vireo-vms/fold-disk0", "deep-flatten")
    status, doc = d.request("POST", "/v1/pools/cephfl/volumes/fold-disk0/flatten")
    assert status == 409 and "deep-flatten" in doc["error"]["message"], doc
    assert parent_of(ceph, "fold-disk0")[1] == "fsrc-disk0"
    d.cli("vm", "delete", "fold")
    # A flatten whose volume document cannot be saved (a store fault) says
    # so and keeps the record naming the clone: asked again, it finishes.
    d.cli("vm", "clone", "fsrc", "fsave", "--linked")
    open(os.path.join(d.env["VIREO_TEST_STORE_FAULTS"], "put@volumes+cephfl+fsave-disk0"),
         "w").close()
    t = d.wait_task(d.api("POST", "/v1/pools/cephfl/volumes/fsave-disk0/flatten",
                          expect=202)["task"])
    assert t["state"] == "failed" and "flatten it again" in t["error"]["message"], t
    vol = d.api("GET", "/v1/pools/cephfl/volumes/fsave-disk0")
    assert vol["backing_volume"] == "cephfl/fsrc-disk0", vol
    t = d.wait_task(d.api("POST", "/v1/pools/cephfl/volumes/fsave-disk0/flatten",
                          expect=202)["task"])
    assert t["state"] == "succeeded", t
    assert d.api("GET", "/v1/pools/cephfl/volumes/fsave-disk0")["backing_volume"] is None
    d.cli("vm", "delete", "fsave")
    # Offline, a clone of the image's base: the base stays for the image.
    base = parent_of(ceph, "fsrc-disk0")[1]
    task = d.api("POST", "/v1/pools/cephfl/volumes/fsrc-disk0/flatten", expect=202)["task"]
    t = d.wait_task(task)
    assert t["details"]["bytes_done"] == t["details"]["bytes_total"] == 64 * MiB, t
    assert "base" in t["result"]["snapshot_kept"], t
    assert parent_of(ceph, "fsrc-disk0") is None and "base" in rbd_snaps(ceph, base)
    assert d.api("GET", "/v1/pools/cephfl/volumes/fsrc-disk0")["image"] is None
    d.cli("vm", "delete", "fsrc")  # its disk backs nothing now: it goes
    assert "fsrc-disk0" not in images(ceph)
    d.cli("vm", "delete", "flink", "--force")
    d.cli("pool", "delete", "cephfl")


def test_flatten_cancelled_stays_a_clone_and_import_shows_bytes(ceph, rbd_env, tmp_path):
    """`task cancel` of a flatten vireod does itself (its VM stopped) stops
    it: the task ends cancelled, the volume is still a valid clone (its
    parent and the parent's snapshot in Ceph, its record's backing), and a
    flatten asked again finishes it; a migration asked meanwhile is refused
    (409) naming the flatten task, and a flatten of the VM's other disk,
    queued behind it and cancelled, frees that volume. A disk image imported into an rbd pool
    (qemu-img convert -p through QEMU's rbd driver) shows its bytes."""
    d, keyring, key = rbd_env
    d.cli("pool", "create", "cephcan", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    d.cli("vm", "create", "csrc", "--memory", "256M", "--pool", "cephcan")
    d.task_ok("POST", "/v1/pools/cephcan/volumes", {"name": "cdata", "size_bytes": 8 * MiB})
    d.task_ok("POST", "/v1/vms/csrc/disks", {"volume": "cephcan/cdata"})
    d.cli("vm", "clone", "csrc", "ccan", "--linked")  # two clones: its disks 0 and 1
    second = d.vm("ccan")["disks"][1]["volume"].replace("/", "/volumes/")
    hold = os.path.join(d.env["VIREO_FAKE_FAULTS"], "rbd_flatten_progress")
    open(hold + ".hold", "w").close()
    try:  # held at librbd's first progress report
        task = d.api("POST", "/v1/pools/cephcan/volumes/ccan-disk0/flatten",
                     expect=202)["task"]
        wait_until(lambda: os.path.exists(hold + ".held"), 120, what="the flatten held")
        status, doc = d.request("POST", "/v1/vms/ccan/migrate", {"to": "elsewhere"})
        assert status == 409 and task["id"] in doc["error"]["message"], doc
        # The flatten of its other disk queues behind it; cancelled while
        # queued, it frees that volume (asked again: queued again, not 409).
        for _ in range(2):
            queued = d.api("POST", f"/v1/pools/{second}/flatten", expect=202)["task"]
            assert d.api("GET", f"/v1/tasks/{queued['id']}")["state"] == "queued"
            d.cli("task", "cancel", queued["id"])
            assert d.api("GET", f"/v1/tasks/{queued['id']}")["state"] == "cancelled"
        d.cli("task", "cancel", task["id"], "--async")
    finally:
        os.unlink(hold + ".hold")
    done = wait_until(lambda: (lambda t: t if t["state"] not in ("queued", "running") else None)(
        d.api("GET", f"/v1/tasks/{task['id']}")), 120, what="the cancelled flatten")
    os.unlink(hold + ".held")
    assert done["state"] == "cancelled" and "stays a clone" in done["message"], done
    assert parent_of(ceph, "ccan-disk0")[1] == "csrc-disk0"
    assert "vireo.clone.ccan-disk0" in rbd_snaps(ceph, "csrc-disk0")
    assert d.api("GET", "/v1/pools/cephcan/volumes/ccan-disk0")["backing_volume"] == \
        "cephcan/csrc-disk0"
    t = d.wait_task(d.api("POST", "/v1/pools/cephcan/volumes/ccan-disk0/flatten",
                          expect=202)["task"])
    assert t["state"] == "succeeded" and not t["result"]["cancel_too_late"], t
    assert parent_of(ceph, "ccan-disk0") is None
    for vm in ("ccan", "csrc"):
        d.cli("vm", "delete", vm)
    d.cli("volume", "delete", "cephcan/cdata")  # attached, not made for csrc: kept

    # Import: qemu-img's -p percent becomes the task's bytes.
    src = str(tmp_path / "data.raw")
    with open(src, "wb") as f:
        f.truncate(16 * MiB)
        f.write(os.urandom(4 * MiB))
    d.cli("volume", "import", "cephcan/imported", src, "--format", "raw")
    t = next(t for t in d.api("GET", "/v1/tasks")["tasks"]
             if t["kind"] == "volume-import" and t["target"] == "imported")
    assert t["state"] == "succeeded" and \
        t["details"]["bytes_done"] == t["details"]["bytes_total"] == 16 * MiB, t
    d.cli("volume", "delete", "cephcan/imported")
    d.cli("pool", "delete", "cephcan")


def test_vm_boots_from_rbd_writes_survive_online_resize(ceph, rbd_env):
    """An RBD clone of the default image's base (imported with qemu-img
    through QEMU's rbd driver) is a VM's root disk (root=/dev/vda): it boots;
    a snapshot of the running VM (RBD snapshots) and a revert with the VM
    stopped bring back a file written before it and drop one written after
    (which the stop kept: rbd diff); an online resize is seen in the guest;
    the key reaches QEMU by file only."""
    from vireo_harness import BOOT_MARKER
    d, keyring, key = rbd_env
    d.cli("pool", "create", "ceph2", "--type", "rbd", "--monitors", ceph.monitors, "--pool",
          "vireo-vms", "--user", "vireo", "--keyring", keyring)
    d.cli("vm", "create", "rbdvm", "--memory", "256M", "--pool", "ceph2")
    vol = d.api("GET", "/v1/pools/ceph2/volumes/rbdvm-disk0")
    assert vol["rbd_image"] == "vireo-vms/rbdvm-disk0" and vol["format"] == "raw"
    assert parent_of(ceph, "rbdvm-disk0") == ("vireo-vms", BASE, "base")  # boots from a clone
    assert "rbdvm-disk0" in images(ceph)
    image_bytes = os.path.getsize(os.path.join(d.state_dir, "images", "default", "disk.raw"))
    assert image_size(ceph, "rbdvm-disk0") == image_bytes

    d.cli("vm", "start", "rbdvm")
    d.wait_console("rbdvm", BOOT_MARKER, timeout=120)
    pid = d.vm("rbdvm")["pid"]
    d.qemu_pids.add(pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().decode(errors="replace")
    assert '"driver":"rbd"' in argv and "vireo-vms" in argv
    assert key not in argv and '"qom-type":"secret"' in argv

    d.guest("rbdvm", "echo vireo-rbd-42 > /root/rbd-marker && sync")
    # A snapshot of the running VM: an RBD snapshot of its disk, the VM
    # paused for the instant; listed with the VM's snapshots.
    d.cli("snapshot", "create", "rbdvm", "s1")
    assert rbd_snaps(ceph, "rbdvm-disk0") == ["s1"]
    listed = d.api("GET", "/v1/vms/rbdvm/snapshots")
    assert [s["name"] for s in listed["snapshots"]] == ["s1"] and listed["current"] == "s1"
    assert listed["snapshots"][0]["memory"] is False
    assert d.vm("rbdvm")["state"] == "running"
    paused = re.search(r"paused (\d+) ms for RBD snapshot s1 of 1 disk", d.log())
    assert paused, "vireod logs how long the VM was paused"
    print(f"rbdvm was paused {paused.group(1)} ms for snapshot s1")
    d.guest("rbdvm", "rm /root/rbd-marker && echo after > /root/rbd-later && sync")
    d.cli("vm", "stop", "rbdvm")
    # What the guest wrote after the snapshot reached the image (and survived the stop)...
    assert json.loads(ceph.rbd("diff", "--from-snap", "s1", "--format", "json",
                               "vireo-vms/rbdvm-disk0"))
    # ...and the revert (rbd_snap_rollback, the VM stopped) takes it back.
    d.task_ok("POST", "/v1/vms/rbdvm/snapshots/s1/revert", {})
    d.cli("vm", "start", "rbdvm")
    d.wait_console("rbdvm", BOOT_MARKER, count=2, timeout=120)
    d.qemu_pids.add(d.vm("rbdvm")["pid"])
    out = d.guest("rbdvm", "cat /root/rbd-marker; ls /root")
    assert "vireo-rbd-42" in out and "rbd-later" not in out, out

    # vireod dies inside a snapshot's window (its file systems frozen by the
    # agent, the VM paused, the RBD snapshot made): the restarted vireod
    # finds the marker the snapshot left, resumes and thaws the VM.
    wait_until(lambda: d.vm("rbdvm")["guest"]["agent"], 90, interval=0.5,
               what="rbdvm's guest agent")
    fault = os.path.join(d.env["VIREO_TEST_MIGRATE_FAULT"], "rbd-snapshot-exit-in-pause")
    open(fault, "w").close()
    marker = os.path.join(d.run_dir, "vms", d.vm("rbdvm")["id"], "snapshot-pause.json")
    d.api("POST", "/v1/vms/rbdvm/snapshots", {"name": "s2"}, expect=202)
    d.proc.wait(timeout=120)
    assert not os.path.exists(fault), d.log()
    with open(marker) as f:
        assert json.load(f) == {"frozen": True, "paused": True}
    assert rbd_snaps(ceph, "rbdvm-disk0") == ["s1", "s2"]  # made, not recorded
    d.start()
    assert d.vm("rbdvm")["state"] == "running", d.log()
    assert not os.path.exists(marker)
    assert "rbdvm: resumed (vireod had paused it for the snapshot)" in d.log()
    # Thawed: a write and sync in the guest end, and a new freeze works.
    d.guest("rbdvm", "echo thawed > /root/after-crash && sync", timeout=30)
    d.cli("snapshot", "create", "rbdvm", "s2")
    assert "removed leftover RBD snapshot vireo-vms/rbdvm-disk0@s2" in d.log()
    s2 = d.api("GET", "/v1/vms/rbdvm/snapshots")["snapshots"][-1]
    assert s2["name"] == "s2" and s2["quiesced"] is True, s2
    d.task_ok("DELETE", "/v1/vms/rbdvm/snapshots/s2")

    # Online: QMP block_resize on the running VM's RBD node.
    d.task_ok("POST", "/v1/pools/ceph2/volumes/rbdvm-disk0/resize",
              {"size_bytes": image_bytes + 32 * MiB})
    sectors = int(d.guest("rbdvm", "cat /sys/block/vda/size").split()[0])
    assert sectors * 512 == image_bytes + 32 * MiB
    assert image_size(ceph, "rbdvm-disk0") == image_bytes + 32 * MiB

    # Hot-plugged: the key object first (object-add), then the rbd node.
    d.task_ok("POST", "/v1/pools/ceph2/volumes", {"name": "data", "size_bytes": 16 * MiB})
    d.task_ok("POST", "/v1/vms/rbdvm/disks", {"volume": "ceph2/data"})
    # The guest sees the new disk a moment after the add (bounded wait).
    sectors = d.guest("rbdvm", "i=0; until [ -e /sys/block/vdb/size ] || [ $i -ge 100 ]; do "
                               "sleep 0.1; i=$((i+1)); done; cat /sys/block/vdb/size")
    assert int(sectors.split()[-1]) * 512 == 16 * MiB, sectors
    d.guest("rbdvm", "echo vireo-hot-7 | dd of=/dev/vdb conv=fsync 2>/dev/null")
    assert ceph.ns("rbd", "-c", ceph.conf, "export", "vireo-vms/data", "-",
                   timeout=60).stdout.startswith("vireo-hot-7")
    # Deleted while the VM runs: from the disk that has it (not from vdb, added later).
    d.task_ok("DELETE", "/v1/vms/rbdvm/snapshots/s1")
    assert rbd_snaps(ceph, "rbdvm-disk0") == []
    assert d.api("GET", "/v1/vms/rbdvm/snapshots")["snapshots"] == []

    # Backups of the running VM's two RBD disks: a full one, then an
    # incremental one that holds what the guest wrote since (rbd diff).
    d.guest("rbdvm", "dd if=/dev/urandom of=/root/b1 bs=64k count=32 2>/dev/null; sync")
    full = rbd_backup(d, "rbdvm")
    d.guest("rbdvm", "dd if=/dev/urandom of=/root/b2 bs=64k count=16 2>/dev/null; "
                     "dd if=/dev/urandom of=/dev/vdb bs=64k count=4 seek=8 conv=fsync "
                     "2>/dev/null; sync")
    started = time.monotonic()
    inc = d.cli_json("backup", "create", "rbdvm", "--incremental")  # the CLI's way
    inc_seconds = time.monotonic() - started
    assert full["kind"] == "full" and inc["kind"] == "incremental", (full, inc)
    assert inc["parent"] == full["id"] and inc["vm_running"] is True
    assert full["quiesced"] is True and inc["quiesced"] is True, inc
    assert d.vm("rbdvm")["state"] == "running"
    disk_bytes = sum(k["virtual_size"] for k in inc["disks"])
    print(f"rbd backups of {disk_bytes} disk bytes: full {full['stored_bytes']} bytes, "
          f"incremental {inc['stored_bytes']} bytes ({inc_seconds:.1f} s)")
    assert inc["stored_bytes"] < disk_bytes // 8, inc
    assert inc["stored_bytes"] < full["stored_bytes"] // 2, (full, inc)
    assert [k["stored_bytes"] > 0 for k in inc["disks"]] == [True, True], inc
    # Only the newest backup's snapshots stay (the next one's base).
    snap = f"vireo.backup.{inc['id']}"
    assert rbd_snaps(ceph, "rbdvm-disk0") == [snap] and rbd_snaps(ceph, "data") == [snap]
    d.task_ok("POST", f"/v1/backups/{inc['id']}/verify", {})
    assert d.api("GET", f"/v1/backups/{inc['id']}")["last_verify"]["ok"] is True
    # Restored as a new VM into the rbd pool: each disk, byte for byte,
    # the image as at the backup's snapshot.
    d.task_ok("POST", f"/v1/backups/{inc['id']}/restore", {"as": "rbdback", "pool": "ceph2"})
    restored = [k["volume"] for k in d.api("GET", "/v1/vms/rbdback")["disks"]]
    for src, dst in zip(("rbdvm-disk0", "data"), restored):
        assert dst.startswith("ceph2/"), restored
        ceph.ns("qemu-img", "compare", "-f", "raw", "-F", "raw",
                f"rbd:vireo-vms/{src}@{snap}:conf={ceph.conf}",
                f"rbd:vireo-vms/{dst.split('/')[1]}:conf={ceph.conf}", timeout=120)
    # Its disks are raw RBD images and say so, as QEMU is to open them (a
    # qcow2 format over an RBD image's raw bytes failed the start; not
    # started here: a killed QEMU's watch keeps its images ~30 s).
    assert [k["format"] for k in d.api("GET", "/v1/vms/rbdback")["disks"]] == ["raw", "raw"]
    d.cli("vm", "delete", "rbdback")
    for b in (inc, full):
        d.task_ok("DELETE", f"/v1/backups/{b['id']}")
    # Forced off: its QEMU killed, whose Ceph clients' watches would hold
    # both images about 30 s (Ceph's watch timeout). The deletes right
    # after blocklist those clients only (recorded at its start and the
    # hot-plug, dead once reaped) and go through at once.
    d.remember_qemu_pids()
    d.cli("vm", "stop", "rbdvm", "--force")
    t0 = time.monotonic()
    d.cli("vm", "delete", "rbdvm")
    assert "rbdvm-disk0" not in images(ceph)
    d.task_ok("DELETE", "/v1/pools/ceph2/volumes/data")
    took = time.monotonic() - t0
    print(f"both RBD images of the forced-off VM deleted {took:.1f} s after the stop")
    assert took < 20, took
    assert images(ceph) == [BASE]
    # The image's delete takes its base out of the Ceph pool.
    d.api("DELETE", "/v1/images/default")
    assert images(ceph) == []
