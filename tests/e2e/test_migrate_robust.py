"""Live migration's robustness on a real three-host cluster (cluster_harness;
real TCG guests): restart handling (vireod dying mid-migration,
VIREO_TEST_MIGRATE_FAULT's exit points): the guest runs in exactly one
place afterwards, the task ends with a reason, nothing is left. (A
migration that does not converge: test_migrate_converge.py.)"""

import os

from test_migrate import (form, shared_pool, create_on, hosts_of, ticks, start_counter,
                          start_dirtying, qemu_of)

from vireo_harness import BOOT_MARKER, wait_until


def settled(h, tid, timeout=300):
    return wait_until(lambda: (lambda t: t if t["state"] in ("succeeded", "failed", "cancelled")
                               else None)(h.api("GET", f"/v1/tasks/{tid}")), timeout,
                      what=f"task {tid}")


def counter_goes_on(h, name):
    # A VM the destination continued on its own (its source died before the
    # commit) starts a console log of its own, with no tick yet: the first
    # comes within a second of the guest running (bounded here).
    before = max(wait_until(lambda: ticks(h.console_log(name)), 60,
                            what=f"a tick on {h.name}'s console log"))
    wait_until(lambda: max(ticks(h.console_log(name))) >= before + 2, 60,
               what=f"the counter goes on on {h.name}")


def nothing_at(h, vm_id):
    """No QEMU of the VM on h, and (soon after: vireod removes them once it
    has reaped that QEMU) no run or state directory of it."""
    wait_until(lambda: not qemu_of(h, vm_id), 30, what=f"no QEMU of the VM on {h.name}")
    dirs = [os.path.join(h.run_dir, "vms", vm_id), os.path.join(h.state_dir, "vms", vm_id)]
    wait_until(lambda: not any(os.path.exists(x) for x in dirs), 30,
               what=f"no run or state directory of the VM on {h.name}")


def busy_vm(h, name, memory=256, dirty_mib=16):
    # TCG always: the bandwidths and limits of these tests are tuned to how
    # fast a TCG guest dirties; under KVM it would dirty far faster.
    create_on(h, name, memory=memory, accel="tcg")
    h.cli("vm", "start", name)
    h.wait_console(name, BOOT_MARKER, timeout=240)
    start_counter(h, name)
    # A loop dirtying dirty_mib of memory over and over, as fast as the
    # guest copies (random bytes in its /dev/shm, a tmpfs: no zero pages
    # for QEMU to skip).
    start_dirtying(h, name, "cp /dev/shm/src /dev/shm/dirty",
                   setup=f"dd if=/dev/urandom of=/dev/shm/src bs=1M count={dirty_mib} 2>/dev/null")
    return h.vm(name)["id"]


def one_qemu(c, vm_id, h):
    """The guest's QEMU runs on h only, exactly one."""
    for x in c.hosts:
        if x is not h:
            wait_until(lambda: not qemu_of(x, vm_id), 30, what=f"no QEMU of the VM on {x.name}")
    assert len(qemu_of(h, vm_id)) == 1, qemu_of(h, vm_id)


def migrate_tasks(h):
    return {t["id"]: t for t in h.api("GET", "/v1/tasks")["tasks"] if t["kind"] == "migrate"}


def cluster_with_faults(cluster, tmp_path, n):
    """n real-QEMU hosts whose vireods take VIREO_TEST_MIGRATE_FAULT (a file
    per point in the returned directory, taken once), restarts included."""
    faults = tmp_path / "faults"
    faults.mkdir()
    os.environ["VIREO_TEST_MIGRATE_FAULT"] = str(faults)
    try:
        c = cluster(n, driver="qemu", listen=False)
    finally:
        del os.environ["VIREO_TEST_MIGRATE_FAULT"]
    for h in c.hosts:  # restarts keep the hook
        h.env = {**(h.env or {}), "VIREO_TEST_MIGRATE_FAULT": str(faults)}
    return c, faults


def two_hosts_h2_continues_on_silence(cluster, tmp_path):
    """Two formed hosts with the fault hook and the shared pool; h2
    continues an incoming VM the store gives it once its source has been
    silent 3 s (60 s otherwise). Returns (c, faults)."""
    c, faults = cluster_with_faults(cluster, tmp_path, 2)
    h2 = c.hosts[1]
    h2.env["VIREO_TEST_MIGRATE_IDLE_MS"] = "3000"
    h2.stop()
    h2.start()
    form(c)
    shared_pool(c)
    return c, faults


def test_a_vireod_that_dies_mid_migration_loses_no_vm(cluster, tmp_path):
    """Three hosts, real guests; test-only exit points
    (VIREO_TEST_MIGRATE_FAULT) make a vireod _exit mid-migration; its next
    start finishes or undoes the migration from its intent file."""
    c, faults = cluster_with_faults(cluster, tmp_path, 3)
    h1, h2, h3 = c.hosts
    # h2 continues a VM whose source died after the switch 3 s after the
    # last sign of it (not 60); h3 keeps the default, so its incoming VM
    # waits for the digest call in case 3.
    h2.env["VIREO_TEST_MIGRATE_IDLE_MS"] = "3000"
    h2.stop()
    h2.start()
    form(c)
    shared_pool(c)
    vm_id = busy_vm(h1, "vm")

    # 1. The source vireod dies during the memory phase (a slow copy): its
    # QEMU goes on migrating without it. Restarted, it cancels that stream
    # and the VM runs on at h1; h2's incoming QEMU is gone.
    (faults / "exit-in-memory").touch()
    doc = h1.api("POST", "/v1/vms/vm/migrate", {"to": "h2", "bandwidth": "2M/s"}, expect=202)
    tid = doc["task"]["id"]
    wait_until(lambda: h1.proc.poll() is not None, 120, what="h1's vireod to exit")
    assert not (faults / "exit-in-memory").exists()
    assert qemu_of(h2, vm_id), "no incoming QEMU on h2"
    h1.start()
    task = settled(h1, tid, timeout=30)
    assert task["state"] == "failed" and task["error"]["code"] == "interrupted", task
    wait_until(lambda: h1.vm("vm")["state"] == "running", 60, what="vm running on h1")
    assert hosts_of(h3, "vm") == ["h1"]
    one_qemu(c, vm_id, h1)
    nothing_at(h2, vm_id)
    counter_goes_on(h1, "vm")

    # 2. The source vireod dies right after the switch, before it cleans
    # up: h2 continues the VM (its watcher), and h1's restart ends the
    # paused source QEMU and its files. Its adoption refused for a few
    # rounds (orphan-adopt-fails) is logged once (before, every round).
    (faults / "exit-after-txn").touch()
    (faults / "orphan-adopt-fails").touch()
    seen = len(h2.log())
    h1.api("POST", "/v1/vms/vm/migrate", {"to": "h2"}, expect=202)
    wait_until(lambda: h1.proc.poll() is not None, 300, what="h1's vireod to exit")
    wait_until(lambda: h2.log()[seen:].count("its source is silent: claiming it") >= 3, 120,
               what="h2 to claim the VM 3 times")
    log = h2.log()[seen:]
    assert log.count("test fault: the adoption is refused") == 1, log[-4000:]
    (faults / "orphan-adopt-fails").unlink()
    wait_until(lambda: (h2.request("GET", "/v1/vms/vm")[1] or {}).get("state") == "running",
               60, what="h2 to continue the VM itself")
    assert qemu_of(h1, vm_id), "the paused source QEMU on h1"
    h1.start()
    wait_until(lambda: hosts_of(h1, "vm") == ["h2"], 30, what="vm on h2 seen from h1")
    one_qemu(c, vm_id, h2)
    nothing_at(h1, vm_id)
    counter_goes_on(h2, "vm")
    assert not os.listdir(os.path.join(h1.run_dir, "migrations"))

    # 3. The destination vireod dies with its incoming QEMU complete and
    # paused (when the RAM digest is asked): the source's task fails with
    # the reason and the VM runs on at h2; h3's restart kills the orphaned
    # incoming QEMU and removes what it made.
    (faults / "dest-exit-complete").touch()
    doc = h2.api("POST", "/v1/vms/vm/migrate", {"to": "h3", "verify_memory": True},
                 expect=202)
    tid = doc["task"]["id"]
    wait_until(lambda: h3.proc.poll() is not None, 300, what="h3's vireod to exit")
    task = settled(h2, tid)
    assert task["state"] == "failed" and "the VM runs on here" in task["error"]["message"], task
    assert h2.vm("vm")["state"] == "running"
    assert qemu_of(h3, vm_id), "the orphaned incoming QEMU on h3"
    h3.start()
    one_qemu(c, vm_id, h2)
    nothing_at(h3, vm_id)
    assert not os.listdir(os.path.join(h3.run_dir, "migrations"))
    assert hosts_of(h3, "vm") == ["h2"]
    counter_goes_on(h2, "vm")


def test_restarts_mid_migration_of_a_local_disk_vm(cluster, tmp_path):
    """A VM with local disks (h1's own pool, mirrored along; three hosts).
    1. h1's
    vireod dies in the memory phase, its disk mirrors under way: restarted,
    it cancels the stream and the mirrors it finds in the re-attached QEMU
    (by name: the dead vireod's are known only in its memory), so the next
    migration of the VM works. 2. h2's vireod dies right after it adopted
    the VM, before it continued it: restarted, it finds the migration's
    intent and continues the guest (it would stay paused otherwise); h1,
    whose take-back the claim refused, ends its copy: one QEMU, at h2."""
    # Three hosts: the store keeps its quorum while one vireod (and the
    # etcd member it runs) is down.
    c, faults = cluster_with_faults(cluster, tmp_path, 3)
    h1, h2, _ = c.hosts
    form(c)
    create_on(h1, "loc", pool=None)
    vm_id = h1.vm("loc")["id"]
    assert h1.vm("loc")["disks"][0]["volume"].startswith("default/")
    h1.cli("vm", "start", "loc")
    h1.wait_console("loc", BOOT_MARKER, timeout=240)
    start_counter(h1, "loc")

    # 1. h1 dies in the memory phase (its mirrors ready, writing through).
    (faults / "exit-in-memory").touch()
    doc = h1.api("POST", "/v1/vms/loc/migrate", {"to": "h2", "bandwidth": "4M/s"}, expect=202)
    tid = doc["task"]["id"]
    wait_until(lambda: h1.proc.poll() is not None, 300, what="h1's vireod to exit")
    assert not (faults / "exit-in-memory").exists()
    h1.start()
    task = settled(h1, tid, timeout=60)
    assert task["state"] == "failed" and task["error"]["code"] == "interrupted", task
    wait_until(lambda: h1.vm("loc")["state"] == "running", 60, what="loc running on h1")
    one_qemu(c, vm_id, h1)
    nothing_at(h2, vm_id)
    counter_goes_on(h1, "loc")

    # 2. The next migration (it would fail on the dead vireod's mirror jobs
    # and NBD nodes): h2 dies once it adopted the VM, before continuing it.
    (faults / "dest-exit-adopted").touch()
    doc = h1.api("POST", "/v1/vms/loc/migrate", {"to": "h2"}, expect=202)
    tid = doc["task"]["id"]
    wait_until(lambda: h2.proc.poll() is not None or
               h1.api("GET", f"/v1/tasks/{tid}")["state"] == "failed", 600,
               what="h2's vireod to exit")
    assert h2.proc.poll() is not None, h1.api("GET", f"/v1/tasks/{tid}")
    task = settled(h1, tid, timeout=120)
    assert task["state"] == "succeeded", task  # h2's claim refused h1's take-back
    h2.start()
    wait_until(lambda: (h2.request("GET", "/v1/vms/loc")[1] or {}).get("state") == "running",
               60, what="h2 to continue the VM at its restart")
    one_qemu(c, vm_id, h2)
    nothing_at(h1, vm_id)
    counter_goes_on(h2, "loc")
    assert not os.listdir(os.path.join(h2.run_dir, "migrations"))
    assert not os.listdir(os.path.join(h1.run_dir, "migrations"))
