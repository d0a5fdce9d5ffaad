"""System test of an iSCSI pool in a cluster (docs/storage-san.md, "In a
cluster"): made on one host, it is the cluster's: every host logs in to the
target (tgt's tgtd in a namespace of the test's own on the hosts' switch,
with CHAP) with its own initiator and lists the same LUNs; the CHAP secret
reaches the other host through the store and is never shown; a LUN one VM
uses is refused to a VM of the other host; a VM booted from a LUN migrates
live without copying its disk, guest RAM compared on both sides; deleted
from the other host, the pool is gone everywhere with its secrets, also
the copy a host's check was writing while the delete ran; a delete racing
another host's attach of a LUN is refused; two hosts refreshing the LUNs
at once both succeed; a restore over a VM with a shareable LUN is refused
while another host's VM with it runs, or another host's restore writes it,
or another host's hot-plug of it is saved and QEMU plugs it, and a hot-plug
saved after another host's restore looked never plugs it; a target that does not answer holds
no other pool's check; a failed read of the published secret keeps the
host's copy in use; a refresh dropping a LUN gone from the target holds
its attach lock, so an attach of it on another host meanwhile is refused,
and a host whose refresh lost that lock to another host's drop (or
update) of the LUN drops (updates) it too; a VM on a LUN of a host's own
pool (made before it joined) is refused a move."""

import os
import subprocess
import threading

import pytest
from iscsi_target import TgtTarget
from test_cluster_projects import held, release
from test_migrate import assert_same_ram, form, hosts_of, keeping_ram, migrate
from vireo_harness import BOOT_MARKER, TEST_IMAGE, wait_until

MiB = 1 << 20
IQN = "iqn.2026-12.org.vireo.test:shared"
USER, SECRET = "vireo", "s3cret-of-the-san"


def volumes(h, pool):
    return {v["name"]: v for v in h.api("GET", f"/v1/volumes?pool={pool}")["volumes"]}


def test_shared_iscsi_pool_and_a_vm_migrating_on_a_lun(cluster, tmp_path):
    keep = str(tmp_path / "ram")
    os.makedirs(keep)
    with keeping_ram(keep):
        c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    ns, address = c.add_netns("san", 200)
    luns = {}
    for lun, size in ((1, 96 * MiB), (2, 16 * MiB)):
        luns[lun] = str(tmp_path / f"lun{lun}.img")
        with open(luns[lun], "wb") as f:
            f.truncate(size)
    t = TgtTarget(ns.name, str(tmp_path), IQN, luns, chap=(USER, SECRET), address=address)
    try:
        secret_file = tmp_path / "chap"
        secret_file.write_text(SECRET + "\n")
        h1.cli("pool", "create", "san1", "--type", "iscsi", "--portal", t.portal, "--target",
               IQN, "--chap-user", USER, "--chap-secret-file", str(secret_file))
        # Both hosts reach it with their own initiator and list its LUNs; h2
        # got the secret from the store and shows it nowhere.
        for h in (h1, h2):
            wait_until(lambda: (h.request("GET", "/v1/pools/san1")[1] or {}).get("reachable"),
                       60, what=f"san1 reachable on {h.name}")
            wait_until(lambda: sorted(volumes(h, "san1")) == ["lun1", "lun2"], 30,
                       what=f"the LUNs seen on {h.name}")
            pool = h.api("GET", "/v1/pools/san1")
            assert pool["shared"] is True and pool["chap_user"] == USER, pool
            assert SECRET not in str(pool), pool
        initiators = {h.api("GET", "/v1/pools/san1")["initiator"] for h in (h1, h2)}
        assert len(initiators) == 2, initiators
        kept = os.path.join(h2.state_dir, "secrets", "iscsi-san1.chap")
        assert open(kept).read() == SECRET and os.stat(kept).st_mode & 0o077 == 0

        # The default image copied onto LUN 1 (raw), as an operator would.
        subprocess.run(["ip", "netns", "exec", ns.name, "qemu-img", "convert", "-n", "-f",
                        "raw", "-O", "raw", os.path.join(TEST_IMAGE, "disk.raw"),
                        f"iscsi://{USER}%{SECRET}@{t.portal}/{IQN}/1"],
                       check=True, capture_output=True, timeout=180)
        body = {"name": "m1", "memory_mib": 128, "max_memory_mib": 256, "accel": "tcg",
                "host": "h1", "disk_volume": "san1/lun1", "networks": ["user"]}
        h1.task_ok("POST", "/v1/vms", body)
        h1.cli("vm", "start", "m1")
        h1.wait_console("m1", BOOT_MARKER, timeout=240)
        h1.guest("m1", "echo written-on-h1 > /root/note; sync")
        # The LUN is m1's in the whole cluster: a VM on h2 cannot have it.
        status, doc = h2.request("POST", "/v1/vms", {**body, "name": "m2", "host": "h2"})
        if status == 202:
            task = h2.wait_task(doc["task"], timeout=120)
            assert task["state"] == "failed", task
            message = task["error"]["message"]
        else:
            message = doc["error"]["message"]
        assert "already attached to VM 'm1'" in message, message

        # Live migration: memory only (the disk is the cluster's), RAM equal.
        task = migrate(h1, "m1", {"to": "h2", "verify_memory": True})
        res = task["result"]
        assert res["memory_verified"] is True and not res.get("disks"), res
        assert_same_ram(keep, h1, h2, h2.vm("m1")["id"])
        for h in (h1, h2):
            wait_until(lambda: hosts_of(h, "m1") == ["h2"], 30, what=f"m1 on h2 from {h.name}")
        assert [d["volume"] for d in h2.vm("m1")["disks"]] == ["san1/lun1"]
        assert volumes(h1, "san1")["lun1"]["attached_to"] == "m1"
        out = h2.guest("m1", "cat /root/note")
        assert "written-on-h1" in out.splitlines(), out
        cmdline = open(f"/proc/{h2.vm('m1')['pid']}/cmdline", "rb").read().decode()
        assert '"driver":"iscsi"' in cmdline and f'"portal":"{t.portal}"' in cmdline
        # h2's QEMU logs in as h2 (each host's own initiator name).
        assert h2.api("GET", "/v1/pools/san1")["initiator"] in cmdline, cmdline

        # Its disk on a shared pool, the VM may be HA.
        h1.cli("vm", "set", "m1", "--ha", "on")
        assert h2.vm("m1")["ha"] is True

        # Deleted from h2 once unused: gone on h1 too, with its secrets.
        h2.cli("vm", "delete", "m1", "--force", "--keep-disks")
        h2.cli("pool", "delete", "san1")
        for h in (h1, h2):
            wait_until(lambda: h.request("GET", "/v1/pools/san1")[0] == 404, 30,
                       what=f"san1 gone on {h.name}")
            wait_until(lambda: not os.path.exists(os.path.join(h.state_dir, "secrets",
                                                               "iscsi-san1.chap")), 30,
                       what=f"the secret's copy gone on {h.name}")
    finally:
        t.stop()



def formed_with_a_target(cluster, tmp_path, h2_env=None, chap=None):
    """Two formed fake hosts (h2 started with h2_env more), a directory of
    fault files (faults) and tgtd on the hosts' switch (a namespace of its
    own) with LUN 1 of 16 MiB, and lun2.img made for a LUN 2 a test adds:
    (h1, h2, faults, target). The pool san1 is made on h1 on that target
    (with CHAP when chap) and seen on h2."""
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    faults = str(tmp_path / "faults")
    os.makedirs(faults)
    if h2_env:
        h2.stop()
        h2.env = {**(h2.env or {}), **{k: faults for k in h2_env}}
        h2.start()
    form(c)
    ns, address = c.add_netns("san", 200)
    luns = {n: str(tmp_path / f"lun{n}.img") for n in (1, 2)}
    for path in luns.values():
        with open(path, "wb") as f:
            f.truncate(16 * MiB)
    t = TgtTarget(ns.name, str(tmp_path), IQN, {1: luns[1]}, chap=chap, address=address)
    t.spare = luns[2]
    args = ["pool", "create", "san1", "--type", "iscsi", "--portal", t.portal, "--target", IQN]
    if chap:
        secret_file = tmp_path / "chap"
        secret_file.write_text(chap[1] + "\n")
        args += ["--chap-user", chap[0], "--chap-secret-file", str(secret_file)]
    try:
        h1.cli(*args)
        # The pool first: its volumes' listing is a 404 until h2 has it.
        wait_until(lambda: (h2.request("GET", "/v1/pools/san1")[1] or {}).get("reachable"),
                   60, what="san1 reachable on h2")
        wait_until(lambda: "lun1" in volumes(h2, "san1"), 30, what="the LUN seen on h2")
    except Exception:
        t.stop()
        raise
    return h1, h2, faults, t


@pytest.mark.parametrize("made_again", [False, True])
def test_secret_copy_written_across_a_delete_goes(cluster, tmp_path, made_again):
    """h2's check of the pool reads the published secret, and is held (a
    test hook) while h1 deletes the pool (and, made_again, makes a shared
    directory pool of that name): the copy h2 writes once let go goes too,
    as its check finds the pool gone (before, it stayed on disk for good: a
    CHAP secret of no pool; kept too when the name was a pool of another
    type)."""
    h1, h2, faults, t = formed_with_a_target(cluster, tmp_path, ["VIREO_TEST_MIGRATE_FAULT"],
                                             chap=(USER, SECRET))
    try:
        kept = os.path.join(h2.state_dir, "secrets", "iscsi-san1.chap")
        pause, go = (os.path.join(faults, p) for p in ("iscsi-secret-write-pause",
                                                        "iscsi-secret-write-go"))
        open(pause, "w").close()
        wait_until(lambda: not os.path.exists(pause), 60, what="h2's check held")
        h1.cli("pool", "delete", "san1")
        wait_until(lambda: h2.request("GET", "/v1/pools/san1")[0] == 404, 30,
                   what="san1 gone on h2")
        if made_again:
            path = str(tmp_path / "dir-pool")
            os.makedirs(path)
            h1.api("POST", "/v1/pools", {"name": "san1", "path": path, "shared": True},
                   expect=201)
            wait_until(lambda: (h2.request("GET", "/v1/pools/san1")[1] or {}).get("type")
                       == "dir", 30, what="the directory pool san1 on h2")
        open(go, "w").close()
        wait_until(lambda: not os.path.exists(go), 60, what="h2's check let go")
        wait_until(lambda: not os.path.exists(kept), 30, what="h2's copy of the secret gone")
    finally:
        t.stop()


def test_delete_racing_an_attach_on_another_host(cluster, tmp_path, monkeypatch):
    """A LUN being attached to a VM of h2 (its save held, the LUN's attach
    lock taken, its relation not yet written) while h1 deletes the pool:
    the delete is refused (409, naming h2), as a volume's delete is, and
    the attach completes (before, the delete won too and h2's VM was left
    with a disk of a pool that no longer existed)."""
    monkeypatch.setenv("VIREO_FAKE_FAULTS", str(tmp_path / "faults"))  # both hosts' holds
    h1, h2, faults, t = formed_with_a_target(cluster, tmp_path)
    try:
        h2.task_ok("POST", "/v1/vms", {"name": "att", "memory_mib": 64, "host": h2.name})
        th, attach = held(faults, "vm_objects_checked", lambda: h2.request(
            "POST", "/v1/vms/att/disks", {"volume": "san1/lun1"}))
        try:
            status, doc = h1.request("DELETE", "/v1/pools/san1")[:2]
        finally:
            release(faults, "vm_objects_checked", th)
        assert status == 409 and "on host 'h2'" in doc["error"]["message"], (status, doc)
        status, doc = attach["r"]
        assert status == 202, doc
        task = h2.wait_task(doc["task"])
        assert task["state"] == "succeeded", task
        assert "san1/lun1" in [d["volume"] for d in h2.api("GET", "/v1/vms/att")["disks"]]
        assert h1.request("GET", "/v1/pools/san1")[0] == 200
    finally:
        t.stop()


def test_two_hosts_refreshing_at_once(cluster, tmp_path):
    """A LUN added to the target, refreshed on h2 (its write of the LUN's
    document held) and on h1 meanwhile: both answer 200 and both list it
    (before, h2's refresh failed with "File exists", h1 having written it
    first)."""
    h1, h2, faults, t = formed_with_a_target(cluster, tmp_path, ["VIREO_TEST_STORE_FAULTS"])
    try:
        t.luns[2] = t.spare
        t.add_lun(2)
        th, refresh = held(faults, "put@cluster+volumes+san1+lun2", lambda: h2.request(
            "POST", "/v1/pools/san1/refresh", {}))
        try:
            status, doc = h1.request("POST", "/v1/pools/san1/refresh", {})[:2]
            assert status == 200, doc
        finally:
            release(faults, "put@cluster+volumes+san1+lun2", th)
        assert refresh["r"][0] == 200, refresh["r"]
        for h in (h1, h2):
            wait_until(lambda: sorted(volumes(h, "san1")) == ["lun1", "lun2"], 30,
                       what=f"both LUNs on {h.name}")
    finally:
        t.stop()


def shareable_lun_of_a_on_h1_and_b_on_h2(h1, h2):
    """lun1 shareable, the disk of VM a (h1) and of VM b (h2): a's backup's id."""
    h1.cli("volume", "set", "san1/lun1", "--shareable")
    wait_until(lambda: volumes(h2, "san1")["lun1"]["shareable"], 30,
               what="lun1 shareable on h2")
    for h, vm in ((h1, "a"), (h2, "b")):
        h.task_ok("POST", "/v1/vms", {"name": vm, "memory_mib": 64, "host": h.name,
                                      "disk_volume": "san1/lun1"})
    doc = h1.api("POST", "/v1/vms/a/backups", {}, expect=202)
    backup = h1.wait_task(doc["task"], timeout=300)
    assert backup["state"] == "succeeded", backup
    return backup["message"]


def test_a_restore_is_refused_while_another_hosts_vm_with_the_lun_runs(cluster, tmp_path):
    """A shareable LUN of VM a (h1, stopped) and of VM b (h2, running): a
    restore over a is refused naming b on h2, and the LUN keeps no mark
    (before, h1 found a, which does not run, and looked no further: the
    restore wrote the LUN under b)."""
    h1, h2, _, t = formed_with_a_target(cluster, tmp_path)
    try:
        backup = shareable_lun_of_a_on_h1_and_b_on_h2(h1, h2)
        h2.cli("vm", "start", "b")
        doc = h1.api("POST", f"/v1/backups/{backup}/restore", {}, expect=202)
        failed = h1.wait_task(doc["task"], timeout=300)
        assert failed["state"] == "failed", failed
        message = failed["error"]["message"]
        assert "VM 'b' on host 'h2'" in message and "runs" in message, message
        assert volumes(h1, "san1")["lun1"]["restore_incomplete"] is None
        h2.cli("vm", "stop", "b", "--force")
    finally:
        t.stop()


def test_another_hosts_restore_running_is_not_one_that_did_not_finish(cluster, tmp_path,
                                                                     monkeypatch):
    """h1's restore over a, held before it writes the shareable LUN: on h2 a
    start of b says the LUN is being restored (task, host), and clearing the
    mark is refused (409) until it ends (before, h2 said the restore did not
    finish, advised clearing the mark, and cleared it: b then started on
    the LUN being written)."""
    monkeypatch.setenv("VIREO_FAKE_FAULTS", str(tmp_path / "faults"))  # both hosts' holds
    h1, h2, faults, t = formed_with_a_target(cluster, tmp_path)
    try:
        backup = shareable_lun_of_a_on_h1_and_b_on_h2(h1, h2)
        th, restore = held(faults, "backup_restore_write", lambda: h1.request(
            "POST", f"/v1/backups/{backup}/restore", {}))
        try:
            wait_until(lambda: volumes(h2, "san1")["lun1"]["restore_incomplete"], 30,
                       what="the mark seen on h2")
            status, doc = h2.request("POST", "/v1/vms/b/start")[:2]
            message = doc["error"]["message"]
            assert status == 409 and "being restored" in message and "'h1'" in message, doc
            status, doc = h2.request("PATCH", "/v1/pools/san1/volumes/lun1",
                                     {"restore_incomplete": None})[:2]
            assert status == 409 and "being restored" in doc["error"]["message"], (status, doc)
        finally:
            release(faults, "backup_restore_write", th)
        status, doc = restore["r"][:2]
        assert status == 202, doc
        assert h1.wait_task(doc["task"], timeout=300)["state"] == "succeeded"
        h2.cli("vm", "start", "b")
        h2.cli("vm", "stop", "b", "--force")
    finally:
        t.stop()


def test_two_hosts_restores_over_vms_with_one_shareable_lun(cluster, tmp_path, monkeypatch):
    """h1's restore over a, held before it writes the LUN a and b share: h2's
    restore over b is refused naming h1's (before, it took the mark over
    once h2 saw it, and both hosts wrote the LUN at once); h1's then ends
    well and unmarks it."""
    monkeypatch.setenv("VIREO_FAKE_FAULTS", str(tmp_path / "faults"))  # both hosts' holds
    h1, h2, faults, t = formed_with_a_target(cluster, tmp_path)
    try:
        backup_a = shareable_lun_of_a_on_h1_and_b_on_h2(h1, h2)
        doc = h2.api("POST", "/v1/vms/b/backups", {}, expect=202)
        backup_b = h2.wait_task(doc["task"], timeout=300)["message"]
        th, restore = held(faults, "backup_restore_write", lambda: h1.request(
            "POST", f"/v1/backups/{backup_a}/restore", {}))
        try:
            wait_until(lambda: "r" in restore, 30, what="h1's restore queued")
            task = restore["r"][1]["task"]
            wait_until(lambda: volumes(h2, "san1")["lun1"]["restore_incomplete"], 30,
                       what="the mark seen on h2")
            doc = h2.api("POST", f"/v1/backups/{backup_b}/restore", {}, expect=202)
            failed = h2.wait_task(doc["task"], timeout=120)
            message = failed["error"]["message"] if failed["error"] else ""
            assert failed["state"] == "failed" and task["id"] in message, failed
        finally:
            release(faults, "backup_restore_write", th)
        assert h1.wait_task(task, timeout=300)["state"] == "succeeded"
        assert volumes(h1, "san1")["lun1"]["restore_incomplete"] is None
    finally:
        t.stop()


def c_running_beside_a_shared_lun(cluster, tmp_path, monkeypatch):
    """formed_with_a_target with both hosts' hold points, lun1 shareable, the
    disk of VM a (h1) and of VM b (h2), and VM c running on h2 without it:
    (h1, h2, faults, target, a's backup's id)."""
    monkeypatch.setenv("VIREO_FAKE_FAULTS", str(tmp_path / "faults"))
    h1, h2, faults, t = formed_with_a_target(cluster, tmp_path)
    try:
        backup = shareable_lun_of_a_on_h1_and_b_on_h2(h1, h2)
        h2.task_ok("POST", "/v1/vms", {"name": "c", "memory_mib": 64, "host": h2.name})
        h2.cli("vm", "start", "c")
    except Exception:
        t.stop()
        raise
    return h1, h2, faults, t, backup


def plug_failed(h2, plug, words):
    """The hot-plug of san1/lun1 into VM c on h2 (plug: held()'s answer)
    failed saying words, and c's definition does not name the LUN."""
    status, doc = plug["r"][:2]
    assert status == 202, doc
    plugged = h2.wait_task(doc["task"])
    assert plugged["state"] == "failed" and words in plugged["error"]["message"], plugged
    disks = h2.api("GET", "/v1/vms/c")["disks"]
    assert "san1/lun1" not in [d["volume"] for d in disks], disks


def test_a_hot_plug_saved_after_another_hosts_restore_looked_comes_out(cluster, tmp_path,
                                                                       monkeypatch):
    """The shareable LUN of VM a (h1) hot-plugged into VM c running on h2,
    held in the save of c's definition (the marks read, nothing plugged);
    meanwhile h1's restore over a marks the LUN and finds no VM that runs
    with it (c's relation not saved yet). Once saved, the hot-plug reads the
    marks again: it fails, the disk never plugged and out of c's definition
    again (before, c kept the LUN while the restore wrote it)."""
    h1, h2, faults, t, backup = c_running_beside_a_shared_lun(cluster, tmp_path, monkeypatch)
    try:
        th, plug = held(faults, "vm_objects_checked", lambda: h2.request(
            "POST", "/v1/vms/c/disks", {"volume": "san1/lun1"}))
        try:
            th2, restore = held(faults, "backup_restore_write", lambda: h1.request(
                "POST", f"/v1/backups/{backup}/restore", {}))
        finally:
            release(faults, "vm_objects_checked", th)
        try:
            plug_failed(h2, plug, "being restored")
        finally:
            release(faults, "backup_restore_write", th2)
        status, doc = restore["r"][:2]
        assert status == 202, doc
        assert h1.wait_task(doc["task"], timeout=300)["state"] == "succeeded"
        h2.cli("vm", "stop", "c", "--force")
    finally:
        t.stop()


def test_a_hot_plug_is_saved_before_qemu_plugs_it(cluster, tmp_path, monkeypatch):
    """The shareable LUN of VM a (h1) hot-plugged into VM c running on h2,
    held where QEMU plugs it (and then made to fail): h1's restore over a,
    started meanwhile, is refused naming c on h2 (c's definition naming the
    LUN was saved before the plug: before, nothing was saved yet, so the
    restore found no VM running with the LUN and wrote it while c's QEMU
    opened it). The plug fails: the disk goes from c's definition again,
    and a restore then finds no VM of c's with it and succeeds."""
    h1, h2, faults, t, backup = c_running_beside_a_shared_lun(cluster, tmp_path, monkeypatch)
    try:
        with open(os.path.join(faults, "disk_attach"), "w") as f:
            f.write("EIO\n")  # taken once the hold is let go: the plug fails
        th, plug = held(faults, "disk_attach", lambda: h2.request(
            "POST", "/v1/vms/c/disks", {"volume": "san1/lun1"}))
        try:
            doc = h1.api("POST", f"/v1/backups/{backup}/restore", {}, expect=202)
            refused = h1.wait_task(doc["task"], timeout=300)
            assert refused["state"] == "failed", refused
            message = refused["error"]["message"]
            assert "VM 'c' on host 'h2'" in message and "runs" in message, message
        finally:
            release(faults, "disk_attach", th)
        plug_failed(h2, plug, "injected fault")
        doc = h1.api("POST", f"/v1/backups/{backup}/restore", {}, expect=202)
        assert h1.wait_task(doc["task"], timeout=300)["state"] == "succeeded"
        h2.cli("vm", "stop", "c", "--force")
    finally:
        t.stop()


def reachable(h, pool):
    return (h.request("GET", f"/v1/pools/{pool}")[1] or {}).get("reachable")


def test_a_dead_targets_check_holds_no_other_pools(cluster, tmp_path):
    """Two shared iSCSI pools; h2's check of san2 is held (a test hook: a
    target that never answers). san1's target stops meanwhile and h2 sees
    it unreachable, then back once it returns (before, the pools were
    checked one after another on one thread: san1's state stayed as it was
    while san2's check hung)."""
    h1, h2, faults, t = formed_with_a_target(cluster, tmp_path, ["VIREO_FAKE_FAULTS"])
    iqn2 = "iqn.2026-12.org.vireo.test:second"
    t2 = TgtTarget(t.netns, str(tmp_path), iqn2, {1: t.spare}, address=t.address)
    hold = os.path.join(faults, "iscsi_check@san2.hold")
    try:
        h1.cli("pool", "create", "san2", "--type", "iscsi", "--portal", t2.portal, "--target",
               iqn2)
        wait_until(lambda: reachable(h2, "san2"), 60, what="san2 reachable on h2")
        open(hold, "w").close()
        wait_until(lambda: os.path.exists(hold[:-len("hold")] + "held"), 60,
                   what="h2's check of san2 held")
        t.stop()
        wait_until(lambda: reachable(h2, "san1") is False, 60,
                   what="san1 unreachable on h2 while its check of san2 hangs")
        t.start()
        wait_until(lambda: reachable(h2, "san1"), 60, what="san1 reachable again on h2")
    finally:
        if os.path.exists(hold):
            os.unlink(hold)  # h2's stop waits for the held check
        t2.stop()
        t.stop()


def test_secret_read_failing_keeps_the_copy(cluster, tmp_path):
    """h2's reads of the published CHAP secret fail three checks in a row (a
    test fault: a store that does not answer them): h2 logs in with its own
    copy, the pool stays reachable there and h2 says so once (before, it
    was unreachable from each failed read until a check read it again)."""
    h1, h2, faults, t = formed_with_a_target(cluster, tmp_path, ["VIREO_TEST_MIGRATE_FAULT"],
                                             chap=(USER, SECRET))
    try:
        fault = os.path.join(faults, "iscsi-secret-read")
        with open(fault, "w") as f:
            f.write("3 EIO")
        seen = []

        def faults_taken():
            seen.append((h2.request("GET", "/v1/pools/san1")[1] or {}).get("reachable"))
            return not os.path.exists(fault)
        wait_until(faults_taken, 120, interval=0.5, what="h2's three checks with the fault")
        assert False not in seen, seen
        log = h2.log()
        assert log.count("its CHAP secret cannot be read from the cluster (Input/output "
                         "error): this host's copy is used") == 1, log
        wait_until(lambda: "its CHAP secret is read from the cluster again" in h2.log(), 60,
                   what="h2 to read the secret again")
        assert (h2.request("GET", "/v1/pools/san1")[1] or {}).get("reachable") is True
    finally:
        t.stop()


def lun2_seen_then_gone(h1, h2, t):
    """LUN 2 added to the target, refreshed on h1 and seen on h2, then
    removed from the target (its volume still listed on both)."""
    t.luns[2] = t.spare
    t.add_lun(2)
    h1.api("POST", "/v1/pools/san1/refresh", {})
    wait_until(lambda: "lun2" in volumes(h2, "san1"), 30, what="LUN 2 seen on h2")
    t.adm("--op", "delete", "--mode", "logicalunit", "--tid", "1", "--lun", "2")


def test_refresh_dropping_a_lun_holds_its_attach_lock(cluster, tmp_path):
    """LUN 2 removed from the target, h2's refresh held (a test hook) after
    it looked at the LUN's users, and h1 attaches the LUN to a VM meanwhile:
    the attach is refused (the refresh holds the LUN's attach lock, as a
    volume's delete does) and the refresh drops the LUN's volume (before,
    the attach succeeded and the refresh then deleted the document of a LUN
    a VM used)."""
    h1, h2, faults, t = formed_with_a_target(cluster, tmp_path, ["VIREO_TEST_MIGRATE_FAULT"])
    try:
        lun2_seen_then_gone(h1, h2, t)
        h1.task_ok("POST", "/v1/vms", {"name": "att", "memory_mib": 64, "host": h1.name})
        pause, go = (os.path.join(faults, p) for p in ("iscsi-refresh-pause",
                                                        "iscsi-refresh-go"))
        open(pause, "w").close()
        refresh = []
        th = threading.Thread(target=lambda: refresh.append(
            h2.request("POST", "/v1/pools/san1/refresh", {})))
        th.start()
        try:
            wait_until(lambda: not os.path.exists(pause), 60, what="h2's refresh held")
            status, doc = h1.request("POST", "/v1/vms/att/disks", {"volume": "san1/lun2"})[:2]
            if status == 202:
                task = h1.wait_task(doc["task"])
                status = 409 if task["state"] == "failed" else 200
                doc = task
        finally:
            open(go, "w").close()
            th.join(timeout=120)
        assert status == 409, (status, doc)
        # Refused for the refresh's lock, named as such (before, "being
        # attached to a VM on host 'h2' (mark it shareable to share it)":
        # advice that would have let the attach past the lock).
        msg = doc["error"]["message"]
        assert "being dropped by a refresh of its pool on host 'h2'" in msg, doc
        assert "shareable" not in msg, doc
        assert refresh and refresh[0][0] == 200, refresh
        disks = [d["volume"] for d in h1.api("GET", "/v1/vms/att")["disks"]]
        assert "san1/lun2" not in disks, disks
        for h in (h1, h2):
            wait_until(lambda: sorted(volumes(h, "san1")) == ["lun1"], 30,
                       what=f"LUN 2's volume gone on {h.name}")
    finally:
        t.stop()


@pytest.mark.parametrize("back", [False, True])
def test_refresh_claim_losing_to_another_hosts_change(cluster, tmp_path, back):
    """LUN 2 removed from the target; h2's refresh claims its volume and is
    held at its take of the attach lock (the store's write held) while h1's
    refresh drops the volume (or, back: LUN 2 put back on the target at
    32 MiB, updates its size): h2's watch, seeing the LUN claimed, leaves
    that change. Once let go, h2's lock finds the document gone (changed)
    and h2 drops the volume too (takes the new size) (before, h2 kept the
    volume as it was for good: every later refresh on h2 kept it too, and
    an attach of it on h2 was refused, its lock comparing a document that
    was gone or newer)."""
    h1, h2, faults, t = formed_with_a_target(cluster, tmp_path, ["VIREO_TEST_STORE_FAULTS"])
    try:
        lun2_seen_then_gone(h1, h2, t)
        point = "put@cluster+volume-attach+san1+lun2"
        th, refresh = held(faults, point, lambda: h2.request("POST", "/v1/pools/san1/refresh",
                                                             {}))
        try:
            if back:
                t.luns[2] = str(tmp_path / "lun2-back.img")
                with open(t.luns[2], "wb") as f:
                    f.truncate(32 * MiB)
                t.add_lun(2)
            h1.api("POST", "/v1/pools/san1/refresh", {})
            want = ["lun1", "lun2"] if back else ["lun1"]
            assert sorted(volumes(h1, "san1")) == want
            # A later change h2 sees: the watch brought it h1's first.
            h1.api("PATCH", "/v1/pools/san1/volumes/lun1", {"shareable": True})
            wait_until(lambda: volumes(h2, "san1")["lun1"]["shareable"], 30,
                       what="h1's later change seen on h2")
        finally:
            release(faults, point, th)
        assert refresh["r"][0] == 200, refresh["r"]
        if back:
            wait_until(lambda: volumes(h2, "san1")["lun2"]["virtual_size_bytes"] == 32 * MiB,
                       30, what="LUN 2's new size on h2")
        else:
            wait_until(lambda: sorted(volumes(h2, "san1")) == ["lun1"], 30,
                       what="LUN 2's volume gone on h2")
    finally:
        t.stop()


def test_vm_on_a_lun_of_a_hosts_own_pool_does_not_move(cluster, tmp_path):
    """A pool made on h1 before it joined stays h1's own: a VM created on one
    of its LUNs without a host, asked of h2, is placed on h1; stopped, it is
    refused a move to h2, 409 saying why (before: 202, and a task that took
    the LUN's iscsi:// string for a file to hash)."""
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    ns, address = c.add_netns("san", 200)
    lun = str(tmp_path / "lun1.img")
    with open(lun, "wb") as f:
        f.truncate(16 * MiB)
    t = TgtTarget(ns.name, str(tmp_path), IQN, {1: lun}, address=address)
    try:
        h1.cli("pool", "create", "san1", "--type", "iscsi", "--portal", t.portal, "--target",
               IQN)
        form(c)
        # Without --host: placement asks for the pool of the volume named,
        # which only h1 has (before, it could pick h2, which answered
        # "volume 'san1/lun1' does not exist").
        created = h2.api("POST", "/v1/vms", {"name": "own", "memory_mib": 128,
                                             "disk_volume": "san1/lun1"}, expect=202)
        assert created["host"]["name"] == h1.name, created
        assert h1.wait_task(created["task"])["state"] == "succeeded"
        status, doc = h1.request("POST", "/v1/vms/own/move", {"to": h2.name})
        assert status == 409, doc
        assert "LUN of this host's own iSCSI pool 'san1'" in doc["error"]["message"], doc
        assert h1.vm("own")["state"] == "defined"  # still here, never started
    finally:
        t.stop()
