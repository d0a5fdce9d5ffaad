"""System tests of iSCSI pools (docs/storage-san.md) against a real target
(tgt's tgtd in the test's namespace, LUNs backed by files): the pool lists
the target's LUNs as volumes and refuses to create or delete them (a LUN in
a project stops counting there once gone from the target or its pool
deleted); bad targets leave no pool; a VM boots from a qcow2-formatted LUN
through QEMU's own initiator and its writes reach the LUN's file; a LUN in
use is never attached to a second VM (two attaches raced: one wins); a
target lost while the VM runs is said (san_state "I/O held", its probe
beside a second target's that hangs; kept across a vireod restart) until it
answers; losing the target pauses the VM (io-error) until it is back, and
vireod resumes it; a snapshot of the VM lands in the LUN's qcow2 layer and
reverts; VMs on LUNs (raw, qcow2-layered, with CHAP) are backed up,
restored and snapshotted through qemu-img and qemu-storage-daemon opening
the LUN with QEMU's iscsi driver."""

import json
import os
import subprocess
import threading
import time

import pytest

from iscsi_target import TgtTarget
from test_web_ui import ADMIN_PASSWORD, SHOTS, WEB_DIST, Web
from vireo_harness import BOOT_MARKER, TEST_IMAGE, Daemon, open_files, wait_until

MiB = 1 << 20
IQN = "iqn.2026-12.org.vireo.test:t1"


@pytest.fixture
def daemon(tmp_path):
    """vireod with a hold directory (util/test-hold.h: a test holds the
    probes of one target)."""
    holds = tmp_path / "holds"
    holds.mkdir()
    d = Daemon(env={"VIREO_FAKE_FAULTS": str(holds)})
    try:
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def target(daemon, tmp_path):
    luns = {}
    for lun, size in ((1, 160 * MiB), (2, 32 * MiB)):
        path = str(tmp_path / f"lun{lun}.img")
        with open(path, "wb") as f:
            f.truncate(size)
        luns[lun] = path
    t = TgtTarget(daemon.netns.name, str(tmp_path), IQN, luns)
    yield t
    t.stop()


def volumes(daemon, pool):
    return {v["name"]: v for v in daemon.api("GET", f"/v1/volumes?pool={pool}")["volumes"]}


def test_pool_lists_luns_and_refuses_what_a_san_does_not_allow(daemon, target):
    out = daemon.cli("pool", "create", "san1", "--type", "iscsi", "--portal", target.portal,
                     "--target", IQN).stdout
    assert "portal:" in out and IQN in out
    vols = volumes(daemon, "san1")
    # tgt's LUN 0 is its controller, not a disk: left out.
    assert sorted(vols) == ["lun1", "lun2"]
    assert vols["lun1"]["lun"] == 1 and vols["lun1"]["virtual_size_bytes"] == 160 * MiB
    assert vols["lun2"]["virtual_size_bytes"] == 32 * MiB
    assert vols["lun1"]["format"] == "raw" and vols["lun1"]["attached_to"] is None
    pool = daemon.api("GET", "/v1/pools/san1")
    assert pool["type"] == "iscsi" and pool["capacity_bytes"] == 192 * MiB
    assert pool["portal"] == target.portal and pool["target"] == IQN
    # One pool per target: a second would let two VMs write one LUN.
    p = daemon.cli("pool", "create", "san2", "--type", "iscsi", "--portal", target.portal,
                   "--target", IQN, check=False)
    assert p.returncode != 0 and "is already pool 'san1'" in p.stderr, p.stderr
    assert daemon.request("GET", "/v1/pools/san2")[0] == 404

    # Volumes are the target's: vireo neither makes nor deletes them.
    status, doc = daemon.request("POST", "/v1/pools/san1/volumes",
                                 {"name": "x", "size_bytes": MiB})
    assert status == 400 and "iSCSI pool" in doc["error"]["message"], doc
    status, doc = daemon.request("DELETE", "/v1/pools/san1/volumes/lun2")
    assert status == 400 and "LUNs" in doc["error"]["message"], doc
    status, doc = daemon.request("POST", "/v1/pools/san1/volumes/lun2/resize",
                                 {"size_bytes": 64 * MiB})
    assert status == 400, doc

    # A LUN added on the target shows after a refresh; one removed goes,
    # and so do its project's documents (as at the pool's delete, below).
    daemon.api("POST", "/v1/projects", {"name": "sanp"}, expect=201)
    for lun in ("lun1", "lun2"):
        daemon.api("PATCH", f"/v1/pools/san1/volumes/{lun}", {"project": "sanp"})
    assert daemon.api("GET", "/v1/projects/sanp")["usage"]["disk_bytes"] == 192 * MiB
    extra = os.path.join(target.workdir, "lun3.img")
    with open(extra, "wb") as f:
        f.truncate(8 * MiB)
    target.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "3", "-b", extra)
    target.adm("--op", "delete", "--mode", "logicalunit", "--tid", "1", "--lun", "2")
    daemon.cli("pool", "refresh", "san1")
    assert sorted(volumes(daemon, "san1")) == ["lun1", "lun3"]
    assert daemon.api("GET", "/v1/projects/sanp")["usage"]["disk_bytes"] == 160 * MiB

    # Bad portal, bad IQN, a target that does not answer or does not exist:
    # 4xx naming the problem, and no pool left.
    for body, words in (
            ({"portal": "127.0.0.1:99999", "target": IQN}, "port"),
            ({"portal": "127.0.0.1", "target": "IQN.bad"}, "iSCSI name"),
            ({"portal": "127.0.0.1:1", "target": IQN}, "does not answer"),
            ({"portal": target.portal, "target": "iqn.2026-12.org.vireo.test:none"},
             "refused")):
        status, doc = daemon.request("POST", "/v1/pools",
                                     {"name": "bad", "type": "iscsi", **body})
        assert status == 400 and words in doc["error"]["message"], (body, doc)
    status, _ = daemon.request("GET", "/v1/pools/bad")
    assert status == 404
    assert not os.path.exists(os.path.join(daemon.state_dir, "secrets", "iscsi-bad.chap"))

    daemon.cli("pool", "delete", "san1")
    assert "san1" not in {p["name"] for p in daemon.api("GET", "/v1/pools")["pools"]}
    assert daemon.api("GET", "/v1/projects/sanp")["usage"]["disk_bytes"] == 0
    daemon.api("DELETE", "/v1/projects/sanp")  # nothing left in it


def test_chap_secret_is_kept_in_a_file_and_never_shown(daemon, tmp_path):
    lun = str(tmp_path / "c.img")
    with open(lun, "wb") as f:
        f.truncate(16 * MiB)
    t = TgtTarget(daemon.netns.name, str(tmp_path), IQN, {1: lun}, chap=("vireo", "s3cret-chap"))
    try:
        secret_file = tmp_path / "secret"
        secret_file.write_text("wrong-secret\n")
        p = daemon.cli("pool", "create", "c1", "--type", "iscsi", "--portal", t.portal,
                       "--target", IQN, "--chap-user", "vireo", "--chap-secret-file",
                       str(secret_file), check=False)
        assert p.returncode != 0 and "refused" in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(daemon.state_dir, "secrets", "iscsi-c1.chap"))
        secret_file.write_text("s3cret-chap\n")
        daemon.cli("pool", "create", "c1", "--type", "iscsi", "--portal", t.portal,
                   "--target", IQN, "--chap-user", "vireo", "--chap-secret-file",
                   str(secret_file))
        kept = os.path.join(daemon.state_dir, "secrets", "iscsi-c1.chap")
        assert os.stat(kept).st_mode & 0o777 == 0o600
        assert open(kept).read() == "s3cret-chap"
        assert sorted(volumes(daemon, "c1")) == ["lun1"]
        for path in ("/v1/pools/c1", "/v1/pools", "/v1/volumes?pool=c1"):
            status, doc = daemon.request("GET", path)
            assert status == 200 and "s3cret" not in str(doc), doc
        assert daemon.api("GET", "/v1/pools/c1")["chap_user"] == "vireo"
        daemon.cli("pool", "delete", "c1")
        assert not os.path.exists(kept)
    finally:
        t.stop()


def attach(daemon, vm, volume):
    """POST a disk add; the task's outcome: (True, None) or (False, message)."""
    status, doc = daemon.request("POST", f"/v1/vms/{vm}/disks", {"volume": volume})
    if status != 202:
        return False, doc["error"]["message"]
    task = daemon.wait_task(doc["task"])
    return task["state"] == "succeeded", (task.get("error") or {}).get("message")


def test_vm_on_a_lun(daemon, target):
    daemon.cli("pool", "create", "san1", "--type", "iscsi", "--portal", target.portal,
               "--target", IQN)
    # A qcow2 layer on LUN 1, then the default image copied into it over
    # iSCSI (what an operator does to put an image on a SAN).
    daemon.cli("volume", "format", "san1/lun1", "--qcow2")
    assert volumes(daemon, "san1")["lun1"]["format"] == "qcow2"
    daemon.ns("qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2",
              os.path.join(TEST_IMAGE, "disk.raw"), target.url(1), timeout=120)

    daemon.cli("vm", "create", "a", "--memory", "192M", "--disk", "san1/lun1")
    vm = daemon.vm("a")
    assert [d["volume"] for d in vm["disks"]] == ["san1/lun1"]
    daemon.cli("vm", "start", "a")
    daemon.wait_console("a", BOOT_MARKER, timeout=180)
    daemon.remember_qemu_pids()
    assert volumes(daemon, "san1")["lun1"]["attached_to"] == "a"
    # No secret, no file: QEMU's own initiator opens the LUN.
    cmdline = open(f"/proc/{daemon.vm('a')['pid']}/cmdline", "rb").read().decode()
    assert '"driver":"iscsi"' in cmdline and f'"portal":"{target.portal}"' in cmdline

    # What the guest writes reaches the LUN's backing file (in the qcow2
    # layer's clusters, as written).
    marker = "vireo-iscsi-" + os.urandom(6).hex()
    daemon.guest("a", f"echo {marker} > /root/note; sync")
    with open(target.luns[1], "rb") as f:
        assert marker.encode() in f.read()

    # A LUN in use is never attached to a second VM; of two attaches of a
    # free LUN raced, one wins.
    for name in ("b", "c"):
        daemon.cli("vm", "create", name, "--memory", "128M")
    ok, message = attach(daemon, "b", "san1/lun1")
    assert not ok and "already attached to VM 'a'" in message, message
    p = daemon.cli("vm", "create", "d", "--disk", "san1/lun1", check=False)
    assert p.returncode != 0 and "already attached to VM 'a'" in p.stderr, p.stderr
    results = {}
    threads = [threading.Thread(target=lambda n=n: results.update({n: attach(daemon, n,
                                                                          "san1/lun2")}))
               for n in ("b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(ok for ok, _ in results.values()) == [False, True], results
    loser = next(m for ok, m in results.values() if not ok)
    assert "attach" in loser, loser
    # A LUN a VM has is not formatted (its data would be lost).
    winner = next(n for n, (ok, _) in results.items() if ok)
    status, doc = daemon.request("POST", "/v1/pools/san1/volumes/lun2/format",
                                 {"format": "qcow2"})
    assert status == 409 and f"attached to VM '{winner}'" in doc["error"]["message"], doc
    assert volumes(daemon, "san1")["lun2"]["format"] == "raw"

    # A LUN hot-plugged into the running VM (blockdev-add of the iscsi
    # driver through QMP), seen by the guest at its size, then unplugged.
    extra = os.path.join(target.workdir, "lun3.img")
    with open(extra, "wb") as f:
        f.truncate(8 * MiB)
    target.luns[3] = extra
    target.add_lun(3)
    daemon.cli("pool", "refresh", "san1")
    ok, message = attach(daemon, "a", "san1/lun3")
    assert ok, message
    sectors = daemon.guest("a", "i=0; until [ -e /sys/block/vdb/size ] || [ $i -ge 100 ]; do "
                                "sleep 0.1; i=$((i+1)); done; cat /sys/block/vdb/size")
    assert int(sectors.split()[-1]) * 512 == 8 * MiB, sectors
    daemon.task_ok("DELETE", "/v1/vms/a/disks/1")
    assert volumes(daemon, "san1")["lun3"]["attached_to"] is None

    # The target lost while the VM runs: QEMU's initiator holds the guest's
    # requests while it reconnects (libiscsi 1.19); vireod's probe finds the
    # target lost and says so (san_state, one vm event), and clears it once
    # the target answers again. Each target's probe runs on its own: a
    # second target whose probe hangs meanwhile (held here, as a login to a
    # portal that never answers would) delays none of the first's.
    os.makedirs(os.path.join(target.workdir, "t2"))
    lun = os.path.join(target.workdir, "t2", "lun1.img")
    with open(lun, "wb") as f:
        f.truncate(8 * MiB)
    t2 = TgtTarget(daemon.netns.name, os.path.join(target.workdir, "t2"), IQN + "b", {1: lun})
    hold = os.path.join(daemon.env["VIREO_FAKE_FAULTS"], f"san_probe_{t2.port}")
    hold1 = os.path.join(daemon.env["VIREO_FAKE_FAULTS"], f"san_probe_{target.port}")
    try:
        daemon.cli("pool", "create", "san2", "--type", "iscsi", "--portal", t2.portal,
                   "--target", IQN + "b")
        open(hold + ".hold", "w").close()
        ok, message = attach(daemon, "a", "san2/lun1")
        assert ok, message
        wait_until(lambda: os.path.exists(hold + ".held"), 120, interval=0.5,
                   what="vireod to probe the second target (held)")
        target.stop()
        wait_until(lambda: daemon.vm("a").get("san_state", "").startswith(
                       "I/O held: target lost since "), 120, interval=0.5,
                   what="vireod to find VM a's target lost while it runs")
        vm = daemon.vm("a")
        assert vm["state"] == "running" and "(san1: " in vm["san_state"], vm
        assert "I/O held" in daemon.cli("vm", "show", "a").stdout
        # vireod restarted meanwhile: nothing is known of the target until
        # its first probe answers (held here), so the text stays, its time
        # too (the second target's probe let go first: it would hold the stop).
        said = vm["san_state"]
        os.unlink(hold + ".hold")
        daemon.stop()
        open(hold1 + ".hold", "w").close()
        daemon.start()
        wait_until(lambda: os.path.exists(hold1 + ".held"), 120, interval=0.5,
                   what="vireod to probe VM a's target after its restart (held)")
        assert daemon.vm("a").get("san_state") == said, daemon.vm("a")
        os.unlink(hold1 + ".hold")
        os.unlink(hold1 + ".held")
        target.start()
        wait_until(lambda: "san_state" not in daemon.vm("a"), 120, interval=0.5,
                   what="VM a's san_state to go once its target answers")
        assert daemon.vm("a")["state"] == "running"
        daemon.task_ok("DELETE", "/v1/vms/a/disks/1")
        daemon.cli("pool", "delete", "san2")
    finally:
        for h in (hold, hold1):
            if os.path.exists(h + ".hold"):
                os.unlink(h + ".hold")
        t2.stop()
    vm_id = daemon.vm("a")["id"]
    events = [json.loads(line[5:]) for line in
              daemon.request("GET", "/v1/events?kind=vm&since=0&follow=false")[1].splitlines()
              if line.startswith("data:")]
    said = [(e["object"] or {}).get("san_state") for e in events if e["id"] == vm_id]
    changes = [x for i, x in enumerate(said) if i == 0 or said[i - 1] != x]
    assert [x and x[:9] for x in changes][-2:] == ["I/O held:", None], changes
    assert sum(1 for x in changes if x and x.startswith("I/O held:")) == 1, changes

    # The target lost: QEMU's initiator reconnects (the guest's writes
    # wait meanwhile); a target back without the LUN fails them and the VM
    # pauses (io-error); vireod, finding the target without the VM's LUN,
    # says so and resumes the VM by itself once the LUN is back; what the
    # guest wrote before and during the loss is all there.
    daemon.guest("a", "mkdir -p /dev/shm; head -c 1048576 /dev/urandom >/dev/shm/src; "
                      "md5sum </dev/shm/src >/dev/shm/src.md5")
    target.stop()
    daemon.guest("a", "(dd if=/dev/shm/src of=/root/blob bs=64k oflag=direct conv=fsync; "
                      "sync; echo done >/root/blob.rc) </dev/null >/dev/null 2>&1 & true")
    target.start(without=(1,))
    wait_until(lambda: (daemon.vm("a")["state"], daemon.vm("a").get("state_reason")) ==
               ("paused", "io-error"), 120, interval=0.5, what="VM a to pause on io-error")
    wait_until(lambda: daemon.vm("a").get("san_state", "").startswith(
                   "paused: I/O error on san1 (target lost since "), 120, interval=0.5,
               what="vireod to find VM a's target lost")
    assert "LUN 1 is not on the target" in daemon.vm("a")["san_state"], daemon.vm("a")
    target.add_lun(1)
    back = time.monotonic()
    wait_until(lambda: (daemon.vm("a")["state"], daemon.vm("a")["san_state"][:14]) ==
               ("running", "resumed after "), 180, interval=0.5,
               what="vireod to resume VM a once its LUN is back")
    print(f"LUN back -> VM running: {time.monotonic() - back:.1f} s; "
          f"san_state: {daemon.vm('a')['san_state']}")
    out = daemon.guest("a", "i=0; until [ -s /root/blob.rc ] || [ $i -ge 600 ]; do sleep 0.1; "
                            "i=$((i+1)); done; cat /root/blob.rc", timeout=120)
    assert "done" in out, out
    out = daemon.guest("a", "echo 3 >/proc/sys/vm/drop_caches; md5sum </root/blob; "
                            "cat /dev/shm/src.md5; cat /root/note")
    written, sent = out.split()[0], out.split()[2]
    assert written == sent and marker in out, out
    assert daemon.vm("a")["state"] == "running"

    # Lost again, and stopped by its user while vireod waits for the LUN:
    # san_state no longer says it waits (it said so for good before, and a
    # later I/O error of a target that answers, a medium error, was then
    # taken for a lost target and the VM resumed at once).
    target.stop()
    daemon.guest("a", "(dd if=/dev/shm/src of=/root/blob2 bs=64k oflag=direct conv=fsync) "
                      "</dev/null >/dev/null 2>&1 & true")
    target.start(without=(1,))
    wait_until(lambda: daemon.vm("a").get("san_state", "").startswith("paused: "), 120,
               interval=0.5, what="vireod to find VM a's target lost again")
    daemon.cli("vm", "stop", "a", "--force")
    wait_until(lambda: "san_state" not in daemon.vm("a"), 60, interval=0.5,
               what="VM a's san_state to go once it is stopped")
    target.add_lun(1)

    # A snapshot of the VM (stopped: qemu-img over iscsi://) lands in the
    # LUN's qcow2 layer.
    daemon.task_ok("POST", "/v1/vms/a/snapshots", {"name": "s1"})
    listed = subprocess.run(["qemu-img", "snapshot", "-l", target.luns[1]], capture_output=True,
                            text=True, check=True).stdout
    assert "s1" in listed, listed
    # Its revert (qemu-img over iscsi:// as well) works: the backup bitmaps
    # a revert drops first live in files only.
    daemon.task_ok("POST", "/v1/vms/a/snapshots/s1/revert", {})
    assert daemon.api("GET", "/v1/vms/a/snapshots/s1")["current"] is True

    # The pool cannot go while a VM has a LUN; the VM's delete keeps the LUN.
    status, doc = daemon.request("DELETE", "/v1/pools/san1")
    assert status == 409 and "in use" in doc["error"]["message"], doc
    daemon.cli("vm", "delete", "a")
    assert "lun1" in volumes(daemon, "san1")


def backup_task(daemon, vm, **body):
    """Backs vm up: the task's (state, message or error)."""
    doc = daemon.api("POST", f"/v1/vms/{vm}/backups", body, expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    if task["state"] != "succeeded":
        return task["state"], task["error"]["message"]
    return "succeeded", daemon.api("GET", f"/v1/backups/{task['message']}")


def backed_up(daemon, vm, **body):
    state, result = backup_task(daemon, vm, **body)
    assert state == "succeeded", result
    assert "iscsi:" not in str(result), result
    return result


def same_image(a, fmt_a, b, fmt_b):
    p = subprocess.run(["qemu-img", "compare", "-U", "-f", fmt_a, "-F", fmt_b, a, b],
                       capture_output=True, text=True, timeout=120)
    return p.returncode == 0, p.stdout + p.stderr


def test_backups_restores_and_snapshots_of_vms_on_luns(daemon, target):
    """Every qemu-img path a VM on a LUN takes (docs/storage-san.md): backups
    of a qcow2-layered LUN (stopped: full through qemu-storage-daemon;
    running: incremental) and of a raw one, restored in place onto the LUN
    and as a new VM, and offline snapshots after them (the backup bitmap
    dropped over iSCSI before the revert); with CHAP, a raw LUN's backup and
    restore, and a qcow2 layer put on a LUN (refused before) with an offline
    snapshot in it. The backups and snapshots failed before with
    "./iscsi://...: No such file or directory" or a refused login."""
    daemon.cli("pool", "create", "san1", "--type", "iscsi", "--portal", target.portal,
               "--target", IQN)
    daemon.cli("volume", "format", "san1/lun1", "--qcow2")
    image = os.path.join(TEST_IMAGE, "disk.raw")
    daemon.ns("qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", image, target.url(1),
              timeout=120)
    with open(image, "rb") as src, open(target.luns[2], "r+b") as dst:  # raw LUN 2: 32 MiB
        dst.write(src.read(32 * MiB))
    daemon.cli("vm", "create", "q", "--memory", "128M", "--disk", "san1/lun1")
    daemon.cli("vm", "create", "r", "--memory", "128M", "--disk", "san1/lun2")

    # Stopped: full backups through qemu-storage-daemon (QEMU's initiator).
    full_q = backed_up(daemon, "q")
    full_r = backed_up(daemon, "r")
    assert full_q["kind"] == "full" and full_r["kind"] == "full"
    raw_at_backup = open(target.luns[2], "rb").read()
    # Running (QEMU's, no booted guest needed): an incremental of the qcow2
    # layer (its bitmap lives in the LUN); the raw LUN's is full, saying why.
    for vm in ("q", "r"):
        daemon.cli("vm", "start", vm)
    daemon.remember_qemu_pids()
    inc_q = backed_up(daemon, "q", incremental=True)
    assert inc_q["kind"] == "incremental" and inc_q["parent"] == full_q["id"], inc_q
    inc_r = backed_up(daemon, "r", incremental=True)
    assert inc_r["kind"] == "full" and "raw" in inc_r["reason"], inc_r
    for vm in ("q", "r"):
        daemon.cli("vm", "stop", vm, "--force")

    # Restore as a new VM: a file volume from the LUN's backup chain.
    daemon.task_ok("POST", f"/v1/backups/{inc_q['id']}/restore", {"as": "q2"})
    q2_disk = daemon.api("GET", "/v1/vms/q2/disks")["disks"][0]["path"]
    # Restore in place: written over the LUN (no file to swap), the same
    # content as the new VM's.
    with open(target.luns[2], "r+b") as f:
        f.seek(MiB)
        f.write(b"\x66" * MiB)
    daemon.task_ok("POST", f"/v1/backups/{full_r['id']}/restore", {})
    assert open(target.luns[2], "rb").read() == raw_at_backup
    daemon.task_ok("POST", f"/v1/backups/{inc_q['id']}/restore", {})
    same, why = same_image(q2_disk, "qcow2", target.luns[1], "qcow2")
    assert same, why

    # Offline snapshots of the qcow2 layer, with the VM's backup bitmap in
    # the LUN: create, list, revert (the bitmap dropped first), delete.
    backed_up(daemon, "q")
    daemon.task_ok("POST", "/v1/vms/q/snapshots", {"name": "s1"})
    assert [s["name"] for s in daemon.api("GET", "/v1/vms/q/snapshots")["snapshots"]] == ["s1"]
    daemon.task_ok("POST", "/v1/vms/q/snapshots/s1/revert", {})
    daemon.task_ok("DELETE", "/v1/vms/q/snapshots/s1")
    listed = subprocess.run(["qemu-img", "snapshot", "-l", target.luns[1]],
                            capture_output=True, text=True, check=True).stdout
    assert "s1" not in listed, listed
    # With CHAP: qemu-img gets the secret as an --object from its file (a
    # raw LUN backed up stopped, then written over in place).
    chap_lun = os.path.join(target.workdir, "chap.img")
    with open(chap_lun, "wb") as f:
        f.write(os.urandom(MiB))
        f.truncate(16 * MiB)
    chap_layered = os.path.join(target.workdir, "chap2.img")
    with open(chap_layered, "wb") as f:  # old data where the qcow2 header goes
        f.write(os.urandom(MiB))
        f.truncate(16 * MiB)
    chap_iqn = "iqn.2026-12.org.vireo.test:chap"
    t2 = TgtTarget(daemon.netns.name, target.workdir, chap_iqn, {1: chap_lun, 2: chap_layered},
                   chap=("vireo", "s3cret-chap"))
    try:
        secret = os.path.join(target.workdir, "secret")
        with open(secret, "w") as f:
            f.write("s3cret-chap\n")
        daemon.cli("pool", "create", "c1", "--type", "iscsi", "--portal", t2.portal, "--target",
                   chap_iqn, "--chap-user", "vireo", "--chap-secret-file", secret)
        daemon.cli("vm", "create", "c", "--memory", "128M", "--disk", "c1/lun1")
        chap_full = backed_up(daemon, "c")
        at_backup = open(chap_lun, "rb").read()
        with open(chap_lun, "r+b") as f:
            f.write(b"\x66" * 4096)
        daemon.task_ok("POST", f"/v1/backups/{chap_full['id']}/restore", {})
        assert open(chap_lun, "rb").read() == at_backup
        # A qcow2 layer put on a LUN of a CHAP pool (refused before), then
        # an offline snapshot in it.
        daemon.cli("volume", "format", "c1/lun2", "--qcow2")
        info = subprocess.run(["qemu-img", "check", "-U", "-f", "qcow2", chap_layered],
                              capture_output=True, text=True)
        assert info.returncode == 0, info.stdout + info.stderr
        daemon.cli("vm", "create", "c2", "--memory", "128M", "--disk", "c1/lun2")
        daemon.task_ok("POST", "/v1/vms/c2/snapshots", {"name": "s1"})
        listed = subprocess.run(["qemu-img", "snapshot", "-U", "-l", chap_layered],
                                capture_output=True, text=True, check=True).stdout
        assert "s1" in listed, listed
        for vm in ("c", "c2"):
            daemon.cli("vm", "delete", vm)
        daemon.cli("pool", "delete", "c1")
    finally:
        t2.stop()

    # A LUN is neither resized nor cloned by vireo: a 400 saying so.
    for path, body in (("resize", {"size_bytes": 256 * MiB}),
                       ("clone", {"target": "default/copy"})):
        status, doc = daemon.request("POST", f"/v1/pools/san1/volumes/lun1/{path}", body)
        assert status == 400 and "iSCSI" in doc["error"]["message"], (path, doc)


def san1_with_shareable_lun2(daemon, target):
    """Pool san1 on the target, its LUN 2 shareable and starting with 1 MiB of 0x11."""
    daemon.cli("pool", "create", "san1", "--type", "iscsi", "--portal", target.portal,
               "--target", IQN)
    daemon.cli("volume", "set", "san1/lun2", "--shareable")
    with open(target.luns[2], "r+b") as f:
        f.write(b"\x11" * MiB)


def test_restore_over_a_shareable_lun_waits_for_its_other_vms(daemon, target):
    """A restore writes a LUN over in place: while another VM that has the
    (shareable) LUN runs, it is refused and the LUN left as it was (it was
    written under the running VM before); once that VM stops, it works."""
    san1_with_shareable_lun2(daemon, target)
    daemon.cli("vm", "create", "a", "--memory", "128M", "--disk", "san1/lun2")
    daemon.cli("vm", "create", "b", "--memory", "128M", "--disk", "san1/lun2")
    full = backed_up(daemon, "a")
    with open(target.luns[2], "r+b") as f:
        f.write(b"\x66" * MiB)
    daemon.cli("vm", "start", "b")
    daemon.remember_qemu_pids()
    doc = daemon.api("POST", f"/v1/backups/{full['id']}/restore", {}, expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    assert task["state"] == "failed", task
    assert "VM 'b'" in task["error"]["message"] and "runs" in task["error"]["message"], task
    assert open(target.luns[2], "rb").read(MiB) == b"\x66" * MiB
    daemon.cli("vm", "stop", "b", "--force")
    daemon.task_ok("POST", f"/v1/backups/{full['id']}/restore", {})
    assert open(target.luns[2], "rb").read(MiB) == b"\x11" * MiB


def qemu_io(path, *commands):
    """Runs qemu-io commands on the qcow2 file behind a LUN (its VM stopped)."""
    args = ["qemu-io", "-f", "qcow2"]
    for c in commands:
        args += ["-c", c]
    p = subprocess.run(args + [path], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "fail" not in p.stdout, p.stdout + p.stderr
    return p.stdout


def test_restore_over_a_qcow2_lun_drops_the_snapshots_it_forgets(daemon, target):
    """The internal snapshots a restore forgets leave the LUN's qcow2 layer
    too: before, one stayed, and a revert to a later snapshot of the same
    name went to it (qemu-img takes the oldest of a tag)."""
    daemon.cli("pool", "create", "san1", "--type", "iscsi", "--portal", target.portal,
               "--target", IQN)
    daemon.cli("volume", "format", "san1/lun2", "--qcow2")
    lun = target.luns[2]
    daemon.cli("vm", "create", "q", "--memory", "128M", "--disk", "san1/lun2")
    qemu_io(lun, "write -P 0x11 0 64k")
    daemon.task_ok("POST", "/v1/vms/q/snapshots", {"name": "s1"})
    full = backed_up(daemon, "q")
    qemu_io(lun, "write -P 0x22 0 64k")
    daemon.task_ok("POST", f"/v1/backups/{full['id']}/restore", {})
    qemu_io(lun, "read -P 0x11 0 64k")
    assert daemon.api("GET", "/v1/vms/q/snapshots")["snapshots"] == []
    listed = subprocess.run(["qemu-img", "snapshot", "-l", lun], capture_output=True,
                            text=True, check=True).stdout
    assert "s1" not in listed, listed
    qemu_io(lun, "write -P 0x33 0 64k")
    daemon.task_ok("POST", "/v1/vms/q/snapshots", {"name": "s1"})
    qemu_io(lun, "write -P 0x44 0 64k")
    daemon.task_ok("POST", "/v1/vms/q/snapshots/s1/revert", {})
    qemu_io(lun, "read -P 0x33 0 64k")


def test_a_formatted_lun_is_filled_without_an_error(daemon, target):
    """A LUN's qcow2 layer is as large as fits once fully allocated (its
    metadata and the VM's bitmaps need room on the LUN too): the disk
    filled to its last byte through QEMU's iscsi driver, as a VM writes it,
    gets no error. Before, the layer was the LUN's size and the writes near
    full failed (an I/O error in the guest)."""
    daemon.cli("pool", "create", "san1", "--type", "iscsi", "--portal", target.portal,
               "--target", IQN)
    out = daemon.cli("volume", "format", "san1/lun2", "--qcow2").stdout
    vol = daemon.api("GET", "/v1/pools/san1/volumes/lun2")
    size = vol["virtual_size_bytes"]
    assert vol["lun_size_bytes"] == 32 * MiB and 31 * MiB < size < 32 * MiB, vol
    assert "qcow2, virtual size 31." in out and "(the LUN: 32 MiB)" in out, out
    header = subprocess.run(["qemu-img", "info", "--output=json", "-f", "qcow2",
                             target.luns[2]], capture_output=True, text=True, check=True)
    assert json.loads(header.stdout)["virtual-size"] == size, header.stdout
    fill = subprocess.run(["ip", "netns", "exec", daemon.netns.name, "qemu-io", "-f", "qcow2",
                           "-c", f"write -P 0x5a 0 {size}", "-c", f"read -P 0x5a {size - MiB} 1M",
                           target.url(2)], capture_output=True, text=True, timeout=300)
    assert fill.returncode == 0 and "failed" not in fill.stdout + fill.stderr, fill
    assert f"wrote {size}/{size} bytes" in fill.stdout, fill.stdout


def with_faults(daemon, tmp_path):
    """vireod restarted with a hold/fault directory (util/test-hold.h)."""
    faults = tmp_path / "faults"
    faults.mkdir()
    daemon.env = {**(daemon.env or {}), "VIREO_FAKE_FAULTS": str(faults)}
    daemon.stop()
    daemon.start()
    return faults


def held_restore(daemon, faults, point, backup):
    """A restore over the original VM queued and held at `point`: its task."""
    (faults / f"{point}.hold").touch()
    task = daemon.api("POST", f"/v1/backups/{backup['id']}/restore", {}, expect=202)["task"]
    wait_until(lambda: (faults / f"{point}.held").exists(), 120, what=f"the restore at {point}")
    return task


def release(faults, point):
    (faults / f"{point}.hold").unlink()
    (faults / f"{point}.held").unlink()


def start_refused(daemon, vm):
    status, doc = daemon.request("POST", f"/v1/vms/{vm}/start")
    assert status == 409, (vm, status, doc)
    return doc["error"]["message"]


@pytest.mark.parametrize("kind", ["dir", "lun"])
def test_a_restore_and_a_start_exclude_each_other(daemon, target, tmp_path, kind):
    """A restore over VM a, held before it writes: neither a nor b (which has
    the same shareable volume) starts (409 naming the restore's task); once
    it is done both do. A restore while b runs, or is starting, is refused,
    for a file volume too (before, its file was swapped under b's QEMU).
    Before, the starts got 202 and ran on the volume being written. A file
    volume's mark left by a vireod killed mid-restore goes at its start."""
    faults = with_faults(daemon, tmp_path)
    if kind == "lun":
        daemon.cli("pool", "create", "san1", "--type", "iscsi", "--portal", target.portal,
                   "--target", IQN)
        volume = "san1/lun2"
    else:
        volume = "default/sh"
        daemon.cli("volume", "create", volume, "--size", "16M", "--format", "raw")
    daemon.cli("volume", "set", volume, "--shareable")
    for vm in ("a", "b"):
        daemon.cli("vm", "create", vm, "--memory", "128M", "--disk", volume)
    full = backed_up(daemon, "a")
    task = held_restore(daemon, faults, "backup_restore_write", full)
    try:
        for vm in ("a", "b"):
            message = start_refused(daemon, vm)
            assert "being restored" in message and task["id"] in message, message
        shown = daemon.api("GET", f"/v1/pools/{volume.replace('/', '/volumes/')}")
        assert shown["restore_incomplete"]["task"] == task["id"], shown
    finally:
        release(faults, "backup_restore_write")
    assert daemon.wait_task(task, timeout=300)["state"] == "succeeded"
    assert daemon.api("GET", f"/v1/pools/{volume.replace('/', '/volumes/')}")[
        "restore_incomplete"] is None
    daemon.cli("vm", "start", "b")
    daemon.remember_qemu_pids()
    doc = daemon.api("POST", f"/v1/backups/{full['id']}/restore", {}, expect=202)
    failed = daemon.wait_task(doc["task"], timeout=300)
    assert failed["state"] == "failed", failed
    assert "VM 'b'" in failed["error"]["message"] and "runs" in failed["error"]["message"], failed
    daemon.cli("vm", "start", "a")  # the refused restore left no mark
    for vm in ("a", "b"):
        daemon.cli("vm", "stop", vm, "--force")
    # b starting (saved so, its task held before it reads the marks): the
    # restore is refused too, and b's start goes on.
    point = "vm_start_restore_check@b"
    (faults / f"{point}.hold").touch()
    start = daemon.api("POST", "/v1/vms/b/start", expect=202)["task"]
    try:
        wait_until(lambda: (faults / f"{point}.held").exists(), 120, what="b's start held")
        doc = daemon.api("POST", f"/v1/backups/{full['id']}/restore", {}, expect=202)
        failed = daemon.wait_task(doc["task"], timeout=300)
        assert failed["state"] == "failed" and "VM 'b'" in failed["error"]["message"], failed
    finally:
        release(faults, point)
    assert daemon.wait_task(start)["state"] == "succeeded"
    daemon.remember_qemu_pids()
    daemon.cli("vm", "stop", "b", "--force")
    if kind == "dir":  # a file volume is whole however its restore ended: a mark a
        # vireod that died left goes at its next start (a LUN's stays: below)
        held_restore(daemon, faults, "backup_restore_write", full)
        daemon.kill9()
        release(faults, "backup_restore_write")
        daemon.start()
        assert daemon.api("GET", "/v1/pools/default/volumes/sh")["restore_incomplete"] is None
        daemon.cli("vm", "start", "a")
        daemon.remember_qemu_pids()
        daemon.cli("vm", "stop", "a", "--force")


def lun_vm_r_backed_up_and_vm_c(daemon, target, tmp_path):
    """vireod with faults; VM r on the shareable san1/lun2, backed up, and VM
    c on a file volume of its own: (faults, r's backup)."""
    faults = with_faults(daemon, tmp_path)
    san1_with_shareable_lun2(daemon, target)
    daemon.cli("vm", "create", "r", "--memory", "128M", "--disk", "san1/lun2")
    daemon.cli("volume", "create", "default/c0", "--size", "1M", "--format", "raw")
    daemon.cli("vm", "create", "c", "--memory", "128M", "--disk", "default/c0")
    return faults, backed_up(daemon, "r")


def test_a_restore_cut_short_leaves_its_lun_marked(daemon, target, tmp_path):
    """A restore onto a LUN whose vireod dies mid-write leaves the LUN marked
    (docs/storage-san.md): after the restart `volume show` and the list say
    so, a start is refused saying the restore did not finish and so is a
    hot-plug into a running VM; a second restore clears it. A write that
    fails keeps the mark too (so does a later restore failing before it
    writes), until `volume set --clear-restore-incomplete`.
    Before, the torn LUN started."""
    faults, full = lun_vm_r_backed_up_and_vm_c(daemon, target, tmp_path)
    with open(target.luns[2], "r+b") as f:
        f.write(b"\x66" * MiB)
    task = held_restore(daemon, faults, "backup_restore_lun_write", full)
    daemon.kill9()
    release(faults, "backup_restore_lun_write")
    daemon.start()
    message = start_refused(daemon, "r")
    assert "did not finish" in message and task["id"] in message, message
    assert "--clear-restore-incomplete" in message, message
    assert task["id"] in daemon.cli("volume", "show", "san1/lun2").stdout
    assert "restore incomplete" in daemon.cli("volume", "list", "san1").stdout
    daemon.cli("vm", "start", "c")
    daemon.remember_qemu_pids()
    plug = daemon.api("POST", "/v1/vms/c/disks", {"volume": "san1/lun2"}, expect=202)
    plugged = daemon.wait_task(plug["task"])
    assert plugged["state"] == "failed", plugged
    assert "did not finish" in plugged["error"]["message"], plugged
    daemon.cli("vm", "stop", "c", "--force")
    daemon.task_ok("POST", f"/v1/backups/{full['id']}/restore", {})
    assert open(target.luns[2], "rb").read(MiB) == b"\x11" * MiB
    daemon.cli("vm", "start", "r")
    daemon.remember_qemu_pids()
    daemon.cli("vm", "stop", "r", "--force")

    (faults / "backup_restore_lun_write").write_text("EIO\n")
    doc = daemon.api("POST", f"/v1/backups/{full['id']}/restore", {}, expect=202)
    failed = daemon.wait_task(doc["task"], timeout=300)
    assert failed["state"] == "failed" and "marked" in failed["error"]["message"], failed
    assert "did not finish" in start_refused(daemon, "r")
    # A restore that fails before it writes leaves the torn LUN's mark as it
    # found it (before, its own mark replaced it and went with it).
    (faults / "backup_restore_write").write_text("EIO\n")
    doc = daemon.api("POST", f"/v1/backups/{full['id']}/restore", {}, expect=202)
    assert daemon.wait_task(doc["task"], timeout=300)["state"] == "failed"
    message = start_refused(daemon, "r")
    assert "did not finish" in message and failed["id"] in message, message
    # The clear holds to If-Match (a stale one: 412, the mark stays).
    status, doc = daemon.request("PATCH", "/v1/pools/san1/volumes/lun2",
                                 {"restore_incomplete": None}, headers={"If-Match": '"1"'})
    assert status == 412, (status, doc)
    daemon.cli("volume", "set", "san1/lun2", "--clear-restore-incomplete")
    daemon.cli("vm", "start", "r")
    daemon.remember_qemu_pids()
    daemon.cli("vm", "stop", "r", "--force")


def test_a_marked_lun_gone_from_the_target_keeps_its_volume_and_mark(daemon, target,
                                                                     tmp_path):
    """A LUN a failed restore left marked, its VM deleted (the LUN kept),
    then gone from the target: a refresh keeps its volume and mark, which
    are there once the LUN is back (before, the refresh dropped the volume
    and the LUN came back unmarked: a VM started on it). The web UI's pool
    page shows the LUN's size and the mark, and its "Accept as is…" clears
    it (web_storage_scenarios.mjs)."""
    assert os.path.exists(os.path.join(WEB_DIST, "index.html")), \
        f"{WEB_DIST}: the web UI is not built (scripts/build-web.sh)"
    daemon.args += ["--https", "127.0.0.1:8443", "--web-dir", WEB_DIST]
    faults = with_faults(daemon, tmp_path)
    san1_with_shareable_lun2(daemon, target)
    daemon.cli("vm", "create", "r", "--memory", "128M", "--disk", "san1/lun2")
    full = backed_up(daemon, "r")
    (faults / "backup_restore_lun_write").write_text("EIO\n")
    doc = daemon.api("POST", f"/v1/backups/{full['id']}/restore", {}, expect=202)
    failed = daemon.wait_task(doc["task"], timeout=300)
    assert failed["state"] == "failed", failed
    daemon.cli("vm", "delete", "r", "--keep-disks")
    target.adm("--op", "delete", "--mode", "logicalunit", "--tid", "1", "--lun", "2")
    daemon.cli("pool", "refresh", "san1")
    target.add_lun(2)
    daemon.cli("pool", "refresh", "san1")
    mark = daemon.api("GET", "/v1/pools/san1/volumes/lun2")["restore_incomplete"]
    assert mark and mark["task"] == failed["id"], mark
    daemon.cli("user", "create", "admin", "--role", "admin", "--password-file", "-",
               input=ADMIN_PASSWORD + "\n")
    os.makedirs(SHOTS, exist_ok=True)
    web = Web(daemon)
    try:
        r = web.browser("pool_restore_accept", pool="san1", volume="lun2")
    finally:
        web.close()
    assert r["mark"] == failed["id"] and r["lun_size"] == 32 * MiB, r
    assert "(LUN 32 MiB)" in r["size_cell"] and r["gone"], r
    assert daemon.api("GET", "/v1/pools/san1/volumes/lun2")["restore_incomplete"] is None


def test_a_restore_while_a_hot_plug_holds_the_lun_is_refused(daemon, target, tmp_path):
    """VM r's shareable LUN hot-plugged into running VM c, held in the save
    of c's definition (the marks read, c's relation not saved yet, the disk
    not plugged until it is): a restore over r is refused, the LUN being
    attached (before, it marked the LUN, found no VM that runs with it and
    wrote it under c); the hot-plug then completes."""
    faults, full = lun_vm_r_backed_up_and_vm_c(daemon, target, tmp_path)
    daemon.cli("vm", "start", "c")
    daemon.remember_qemu_pids()
    (faults / "vm_objects_checked.hold").touch()
    plug = daemon.api("POST", "/v1/vms/c/disks", {"volume": "san1/lun2"}, expect=202)["task"]
    try:
        wait_until(lambda: (faults / "vm_objects_checked.held").exists(), 120,
                   what="c's save held")
        doc = daemon.api("POST", f"/v1/backups/{full['id']}/restore", {}, expect=202)
        failed = daemon.wait_task(doc["task"], timeout=300)
        assert failed["state"] == "failed", failed
        assert "being attached" in failed["error"]["message"], failed
    finally:
        release(faults, "vm_objects_checked")
    assert daemon.wait_task(plug)["state"] == "succeeded"
    assert daemon.api("GET", "/v1/pools/san1/volumes/lun2")["restore_incomplete"] is None
    daemon.cli("vm", "stop", "c", "--force")


def test_a_backing_file_named_in_a_luns_qcow2_header_is_never_opened(daemon, target, tmp_path):
    """Anyone on the SAN can write a LUN's qcow2 header: one naming a backing
    file of this host made qemu-img and qemu-storage-daemon read that file
    under the disk's unwritten clusters, into a backup (and a restore of it).
    The VM's QEMU opened it too. A LUN's qcow2 layer is opened with
    "backing": null (golden file iscsi-lun-disks)."""
    secret = tmp_path / "host-secret.raw"
    secret.write_bytes(b"S" * MiB)
    daemon.cli("pool", "create", "san1", "--type", "iscsi", "--portal", target.portal,
               "--target", IQN)
    daemon.cli("volume", "format", "san1/lun2", "--qcow2")
    subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", str(secret), "-F", "raw",
                    target.luns[2]], check=True, capture_output=True, timeout=60)
    daemon.cli("vm", "create", "q", "--memory", "128M", "--disk", "san1/lun2")
    full = backed_up(daemon, "q")
    daemon.task_ok("POST", f"/v1/backups/{full['id']}/restore", {"as": "q2"})
    restored = daemon.api("GET", "/v1/vms/q2/disks")["disks"][0]["path"]
    read = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0 0 64k", restored],
                          capture_output=True, text=True, timeout=60)
    assert read.returncode == 0 and "fail" not in read.stdout, read.stdout + read.stderr
    # The VM's QEMU: the host's file is not among those it holds open.
    daemon.cli("vm", "start", "q")
    daemon.remember_qemu_pids()
    vm_id = daemon.api("GET", "/v1/vms/q")["id"]
    with open(os.path.join(daemon.run_dir, "vms", vm_id, "qemu.pid")) as f:
        pid = int(f.read().strip())
    assert not open_files(pid, str(tmp_path)), open_files(pid, str(tmp_path))
    daemon.cli("vm", "stop", "q", "--force")
