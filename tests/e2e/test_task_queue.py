"""The task queue is bounded and fair (fake driver): a flood of operations on
one VM gets 429 instead of queueing without end, and one VM whose operation
hangs holds one worker only: another VM's start completes meanwhile. Also:
a live PATCH of vCPUs with autostart applies both (defect 12)."""

import os

from vireo_harness import wait_until

PER_VM_QUEUE = 16  # VO_TASKS_MAX_QUEUED_PER_KEY


def hold(d, op):
    """The fake driver's `op` waits from now on until release(d, op)."""
    open(os.path.join(d.fault_dir, op + ".hold"), "w").close()


def release(d, op):
    os.unlink(os.path.join(d.fault_dir, op + ".hold"))


def held(d, op):
    return os.path.exists(os.path.join(d.fault_dir, op + ".held"))


def test_flooded_vm_gets_429_and_other_vms_proceed(faults):
    d = faults
    d.cli("vm", "create", "slow", "--memory", "128M")
    d.cli("vm", "create", "other", "--memory", "128M")
    d.cli("vm", "start", "slow")

    hold(d, "snapshot")
    try:
        snap = d.api("POST", "/v1/vms/slow/snapshots", {"name": "s0"}, expect=202)["task"]
        wait_until(lambda: held(d, "snapshot"), 30, what="snapshot under way")

        # Flood the busy VM: a bounded number queue, the rest are refused.
        answers = [d.request("POST", "/v1/vms/slow/pause", {}) for _ in range(100)]
        accepted = [doc["task"] for status, doc in answers if status == 202]
        refused = [doc for status, doc in answers if status == 429]
        assert len(accepted) == PER_VM_QUEUE, [s for s, _ in answers]
        assert len(refused) == 100 - PER_VM_QUEUE
        err = refused[0]["error"]
        assert err["code"] == "too-many-requests"
        assert "'slow'" in err["message"] and "try again" in err["message"]
        p = d.cli("vm", "pause", "slow", check=False)
        assert p.returncode != 0 and "too many operations" in p.stderr

        # Another VM's start runs while slow's operation still hangs and its
        # queue still waits: slow holds one worker, not all of them.
        d.task_ok("POST", "/v1/vms/other/start")
        assert d.vm("other")["state"] == "running"
        assert d.api("GET", f"/v1/tasks/{snap['id']}")["state"] == "running"
        states = {d.api("GET", f"/v1/tasks/{t['id']}")["state"] for t in accepted}
        assert states == {"queued"}
    finally:
        release(d, "snapshot")
    assert d.wait_task(snap)["state"] == "succeeded"
    for t in accepted:
        d.wait_task(t)  # the first pauses, the others find it paused
    assert d.vm("slow")["state"] == "paused"
    # Drained: the VM takes operations again.
    d.task_ok("POST", "/v1/vms/slow/resume")


def test_live_resize_with_autostart_applies_both(faults):
    """PATCH vcpus + autostart of a running VM: autostart is applied even
    when the resize task already holds the VM (it used to be dropped)."""
    d = faults
    d.cli("vm", "create", "live", "--memory", "128M", "--max-vcpus", "2")
    d.cli("vm", "start", "live")
    hold(d, "set_vcpus")
    try:
        doc = d.api("PATCH", "/v1/vms/live", {"vcpus": 2, "autostart": True}, expect=202)
        wait_until(lambda: held(d, "set_vcpus"), 30, what="set_vcpus under way")
        # The task holds the VM now; autostart was applied with the request.
        assert d.vm("live")["autostart"] is True
    finally:
        release(d, "set_vcpus")
    assert d.wait_task(doc["task"])["state"] == "succeeded"
    vm = d.vm("live")
    assert (vm["vcpus"], vm["autostart"]) == (2, True)
    # Many times over: never a 202 that drops autostart.
    for i in range(150):
        want = i % 2 == 0
        doc = d.api("PATCH", "/v1/vms/live", {"vcpus": 1 + (i % 2), "autostart": not want},
                    expect=202)
        d.wait_task(doc["task"])
        assert d.vm("live")["autostart"] is (not want), i


def test_one_pending_verify_per_backup(faults):
    """A second verify of a backup while one is pending answers that task."""
    d = faults
    d.cli("vm", "create", "bk", "--memory", "128M")
    doc = d.api("POST", "/v1/vms/bk/backups", {}, expect=202)
    first = d.wait_task(doc["task"])
    assert first["state"] == "succeeded", first
    backup_id = first["message"]
    d.cli("vm", "start", "bk")

    # A running backup holds the backup operations: the verify waits queued.
    hold(d, "backup")
    try:
        busy = d.api("POST", "/v1/vms/bk/backups", {}, expect=202)["task"]
        wait_until(lambda: held(d, "backup"), 30, what="backup under way")
        v1 = d.api("POST", f"/v1/backups/{backup_id}/verify", expect=202)["task"]
        v2 = d.api("POST", f"/v1/backups/{backup_id}/verify", expect=202)["task"]
        assert v2["id"] == v1["id"] and v2["kind"] == "backup-verify"
        verifies = [t for t in d.api("GET", "/v1/tasks")["tasks"]
                    if t["kind"] == "backup-verify" and t["target"] == backup_id]
        assert len(verifies) == 1, verifies
    finally:
        release(d, "backup")
    done = d.wait_task(busy)
    # (It failed once in a clean make check, at load ~12, for a reason the
    # assertion did not show: the task's document and the log's end say it.)
    assert done["state"] == "succeeded", (done, d.log()[-3000:])
    assert d.wait_task(v1)["state"] == "succeeded"
    # Done: verifying again is a new task.
    v3 = d.api("POST", f"/v1/backups/{backup_id}/verify", expect=202)["task"]
    assert v3["id"] != v1["id"]
    assert d.wait_task(v3)["state"] == "succeeded"


def test_resizes_of_a_busy_vms_volumes_wait_in_the_queue(faults):
    """Resizing volumes attached to a VM goes through that VM (online, under
    its job lock): the resizes queue behind the VM's operation instead of
    each holding a worker, so eight of them cannot stall every other VM."""
    d = faults
    d.cli("vm", "create", "busy", "--memory", "128M")
    d.cli("vm", "create", "other", "--memory", "128M")
    d.cli("vm", "start", "busy")
    for _ in range(7):  # the boot disk and 7 more: as many volumes as workers
        d.task_ok("POST", "/v1/vms/busy/disks", {"size_bytes": 1 << 20})
    volumes = [disk["volume"] for disk in d.vm("busy")["disks"]]
    assert len(volumes) == 8

    hold(d, "snapshot")
    try:
        snap = d.api("POST", "/v1/vms/busy/snapshots", {"name": "s0"}, expect=202)["task"]
        wait_until(lambda: held(d, "snapshot"), 30, what="snapshot under way")
        resizes = []
        for key in volumes:
            pool, name = key.split("/")
            size = d.api("GET", f"/v1/pools/{pool}/volumes/{name}")["virtual_size_bytes"]
            resizes.append(d.api("POST", f"/v1/pools/{pool}/volumes/{name}/resize",
                                 {"size_bytes": size + (1 << 20)}, expect=202)["task"])
        # Another VM's start completes while busy's snapshot still hangs.
        d.task_ok("POST", "/v1/vms/other/start")
        assert d.api("GET", f"/v1/tasks/{snap['id']}")["state"] == "running"
        assert {d.api("GET", f"/v1/tasks/{t['id']}")["state"] for t in resizes} == {"queued"}
    finally:
        release(d, "snapshot")
    assert d.wait_task(snap)["state"] == "succeeded"
    for t in resizes:
        assert d.wait_task(t)["state"] == "succeeded"
