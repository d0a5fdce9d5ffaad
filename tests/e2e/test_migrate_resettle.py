"""A live migration whose ownership switch has an unknown outcome for longer
than the migration asks the store (docs/cluster.md, "When the switch's
outcome is unknown"), on two real-QEMU hosts with one real TCG guest on the
shared pool, printing a counter on its console (so that the test sees
which QEMU runs it: vireod's record still says running while it is
paused by a migration).

The test faults txn-lost (the transaction never reached the store) or
txn-unknown (applied, its answer lost) make the outcome unknown, and
settle-unknown makes the migration's own settling (settle_switch) give up
at once, as a store silent for its whole give-up time would. The task fails
saying the source stays paused until the store answers; vireod then asks
again in the background and settles it by itself:

1. not applied: the source QEMU runs again at h1 (the counter goes on
   there) and h2's incoming QEMU ends; migrated again (unknown again) just
   before that settling removed its intent file, the new migration's
   intent and settling are kept (test hook resettle-drop-pause);
   Then applied, but the destination's commit got no answer and the
   source's take-back of the VM has an unknown outcome too (test hooks
   commit-lost, take-back-unknown): the background finds the VM h2's, ends
   the source QEMU, and h2 continues the VM (before, the source stayed
   paused until h1's vireod restarted); then the take-back applied but its
   answer lost (take-back-lost): h2's claim fails and its QEMU ends, and
   the background finds the VM back at h1 and runs the source on (before,
   it stayed paused for good); then the take-back held in flight
   (take-back-late) and decided only after the background read the VM at
   h2: the background settles the take-back itself (fencing it off), so it
   can no longer apply, and h2 continues the guest (before, it applied
   after the read, h1's source ended and h2's claim found nothing: the
   guest was lost);
2. applied: the source QEMU ends and h2 continues the VM (the counter goes
   on there);
   Then a VM with a local disk: settled in the background, the disk's
   file at h1 and its moving intent go too (before: at h1's next start);
3. not applied, but the source QEMU (h2's now) ended while the outcome was
   unknown (as a fencing would kill it; the test hook resettle-unknown
   keeps the background settling unknown meanwhile): the VM is crashed at
   h2, not left "running" with no QEMU (an HA VM would never be restarted).

A second test: the destination's QEMU dies at a post-copy's switch-over
(the switch's outcome unknown, then a vireod that died there): the source
QEMU runs the guest again, and the VM is taken back (the background; a
start, which adopts the QEMU) rather than that only copy ended; a
destination's start does not claim the VM its dead QEMU never held.

A third test: take-backs whose outcome the task could not learn, the
guest's only copy at h1 both times: the task's own take-back after a
failed switch-over (QEMU runs the guest at h1 again) settled as "h2's",
and a take-back that applies at h1's start after the VMs were loaded. The
VM is taken back, or adopted, and runs on at h1.

A fourth: both sides gone. The same switch (applied, outcome unknown), then
both QEMUs killed, the destination's before it held the guest: the source
settles (the VM h2's, its QEMU gone) and keeps nothing; h2, the VM's owner,
asks h1 for a QEMU of it, finds none, records the VM crashed naming the
migration (an event) and, an HA VM, starts it again (before, it sat in no
host's table: no event, HA blind).

Each decision is logged and recorded as a task of kind "migrate" (result
"settled": "not moved" / "moved"). Before, both QEMUs stayed paused until
h1's vireod restarted."""

import os
import signal

from test_migrate import create_on, hosts_of, qemu_of, start_counter
from test_migrate_robust import (counter_goes_on, nothing_at, settled,
                                 two_hosts_h2_continues_on_silence)

from vireo_harness import BOOT_MARKER, wait_until


def settle_notes(h):
    return [t for t in h.api("GET", "/v1/tasks")["tasks"]
            if t["kind"] == "migrate" and "settled" in (t.get("result") or {})]


def migrate_unknown(h, faults, fault, to, vm="ctr"):
    (faults / fault).touch()
    (faults / "settle-unknown").touch()
    tid = h.api("POST", f"/v1/vms/{vm}/migrate", {"to": to}, expect=202)["task"]["id"]
    task = settled(h, tid, timeout=600)
    assert task["state"] == "failed", task
    words = task["error"]["message"]
    assert "has an unknown outcome" in words and "asks it again in the background" in words, \
        words
    assert not (faults / fault).exists() and not (faults / "settle-unknown").exists()


def migrate_not_taken_over(h, faults, *points):
    """h migrates ctr to h2 with the fault points made; h2 never takes it
    over (commit-lost among them): the task fails so."""
    for f in points:
        (faults / f).touch()
    tid = h.api("POST", "/v1/vms/ctr/migrate", {"to": "h2"}, expect=202)["task"]["id"]
    task = settled(h, tid, timeout=600)
    assert task["state"] == "failed", task
    assert "did not take it over" in task["error"]["message"], task
    return task


def two_hosts_counting_at_h1(cluster, tmp_path):
    """two_hosts_h2_continues_on_silence, with the VM ctr on h1 printing
    its counter. Returns (c, faults, ctr's id)."""
    c, faults = two_hosts_h2_continues_on_silence(cluster, tmp_path)
    h1 = c.hosts[0]
    create_on(h1, "ctr", memory=128, accel="tcg")
    h1.cli("vm", "start", "ctr")
    h1.wait_console("ctr", BOOT_MARKER, timeout=240)
    start_counter(h1, "ctr")
    return c, faults, h1.vm("ctr")["id"]


def test_an_unknown_switch_is_settled_in_the_background(cluster, tmp_path):
    c, faults, vm_id = two_hosts_counting_at_h1(cluster, tmp_path)
    h1, h2 = c.hosts

    # 1. Not applied: the source runs on, the destination's QEMU ends. The
    # settling is held (resettle-drop-pause) after the source runs on and
    # before it removes the intent, while the VM is migrated again, with an
    # unknown outcome too: that migration's intent (the same file) and its
    # own settling in the background survive it.
    (faults / "resettle-drop-pause").touch()
    migrate_unknown(h1, faults, "txn-lost", "h2")
    wait_until(lambda: not (faults / "resettle-drop-pause").exists(), 120,
               what="the background settling held")
    assert hosts_of(h1, "ctr") == ["h1"]
    counter_goes_on(h1, "ctr")
    migrate_unknown(h1, faults, "txn-lost", "h2")
    (faults / "resettle-drop-go").touch()
    counter_goes_on(h1, "ctr")
    # h2 ends its incoming VM on its own (told to, or on its source's
    # silence): its dirs go right after its QEMU.
    wait_until(lambda: not os.path.exists(os.path.join(h2.run_dir, "vms", vm_id)), 60,
               what="h2's incoming VM to be removed")
    nothing_at(h2, vm_id)
    assert len(qemu_of(h1, vm_id)) == 1
    assert "the VM is still this host's" in h1.log()
    notes = settle_notes(h1)
    assert [n["result"]["settled"] for n in notes] == ["not moved", "not moved"], notes

    # 1b. Applied, the destination's commit unanswered and the take-back's
    # outcome unknown too (commit-lost, take-back-unknown): h2 continues the
    # VM on its source's silence, and h1's background finds the VM h2's and
    # ends its source QEMU (before, it stayed paused until h1's restart).
    (faults / "commit-lost").touch()
    (faults / "take-back-unknown").touch()
    tid = h1.api("POST", "/v1/vms/ctr/migrate", {"to": "h2"}, expect=202)["task"]["id"]
    task = settled(h1, tid, timeout=600)
    assert task["state"] == "failed", task
    words = task["error"]["message"]
    assert "did not take it over" in words and "asks it again in the background" in words, \
        words
    wait_until(lambda: not qemu_of(h1, vm_id), 180, what="h1's source QEMU to end")
    wait_until(lambda: (h2.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               180, what="h2 to continue the VM")
    assert hosts_of(h2, "ctr") == ["h2"]
    counter_goes_on(h2, "ctr")
    nothing_at(h1, vm_id)
    tid = h2.api("POST", "/v1/vms/ctr/migrate", {"to": "h1"}, expect=202)["task"]["id"]
    assert settled(h2, tid, timeout=600)["state"] == "succeeded"
    counter_goes_on(h1, "ctr")

    # 1c. The same, but the take-back applied and its answer lost
    # (commit-lost, take-back-lost): h2's claim fails, its incoming QEMU
    # ends, and h1's background finds the VM back here and runs its source
    # on (before, it found it "changed by someone else" and kept it paused
    # for good, at each try and each restart).
    migrate_not_taken_over(h1, faults, "commit-lost", "take-back-lost")
    counter_goes_on(h1, "ctr")
    assert hosts_of(h1, "ctr") == ["h1"]
    # The state follows QEMU's RESUME event (it may come a moment after the
    # counter shows the guest running).
    wait_until(lambda: (h1.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               60, what="h1's VM to show running")
    nothing_at(h2, vm_id)
    assert "whose outcome was unknown, was applied" in h1.log()

    # 1d. The take-back sent but decided only after h1's background read
    # the VM at h2 (take-back-late holds it in flight until take-back-go;
    # resettle-quit-pause holds the background between its decision and
    # the source's end; incoming-claim-pause holds h2's claim on its
    # source's silence): once the background decided the VM is h2's, the
    # take-back can no longer apply, and h2 continues the guest (before,
    # it applied, h1's source QEMU ended and h2's claim found the VM gone:
    # the guest was lost).
    migrate_not_taken_over(h1, faults, "commit-lost", "take-back-late", "resettle-quit-pause",
                           "incoming-claim-pause")
    wait_until(lambda: not (faults / "resettle-quit-pause").exists(), 180,
               what="h1's background to decide")
    (faults / "take-back-go").touch()
    wait_until(lambda: "the late take-back of VM" in h1.log(), 60,
               what="the late take-back to be decided")
    (faults / "resettle-quit-go").touch()
    wait_until(lambda: not qemu_of(h1, vm_id), 180, what="h1's source QEMU to end")
    wait_until(lambda: not (faults / "incoming-claim-pause").exists(), 180,
               what="h2 to claim on its source's silence")
    (faults / "incoming-claim-go").touch()
    wait_until(lambda: (h2.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               180, what="h2 to continue the VM")
    assert f"the late take-back of VM {vm_id}: refused" in h1.log()
    counter_goes_on(h2, "ctr")
    nothing_at(h1, vm_id)
    tid = h2.api("POST", "/v1/vms/ctr/migrate", {"to": "h1"}, expect=202)["task"]["id"]
    assert settled(h2, tid, timeout=600)["state"] == "succeeded"
    counter_goes_on(h1, "ctr")

    # 2. Applied: the source ends, h2 continues the VM.
    migrate_unknown(h1, faults, "txn-unknown", "h2")
    wait_until(lambda: (h2.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               180, what="h2 to continue the VM")
    assert hosts_of(h2, "ctr") == ["h2"]
    counter_goes_on(h2, "ctr")
    nothing_at(h1, vm_id)
    assert len(qemu_of(h2, vm_id)) == 1
    assert "the VM is the destination's" in h1.log()
    notes = settle_notes(h1)
    assert sorted(n["result"]["settled"] for n in notes) == ["moved", "moved", "moved",
                                                            "not moved", "not moved",
                                                            "not moved"], notes

    # 2b. Applied, a VM with a local disk (h1's own pool, mirrored along):
    # the background settling that ends its source also removes the disk's
    # file at h1 and its moving intent, as the start-up sweep does (before,
    # they stayed until h1's vireod restarted).
    create_on(h1, "loc", pool=None, memory=128, accel="tcg")
    loc_id = h1.vm("loc")["id"]
    disk = h1.api("GET", "/v1/vms/loc/disks")["disks"][0]["path"]
    assert os.path.exists(disk), disk
    h1.cli("vm", "start", "loc")
    migrate_unknown(h1, faults, "txn-unknown", "h2", vm="loc")
    wait_until(lambda: (h2.request("GET", "/v1/vms/loc")[1] or {}).get("state") == "running",
               180, what="h2 to continue loc")
    wait_until(lambda: not os.path.exists(disk), 60, what="loc's disk file at h1 to go")
    nothing_at(h1, loc_id)
    assert "moved away with its VM: its file here goes" in h1.log()

    # 3. Not applied, the source QEMU gone meanwhile: crashed, not running.
    (faults / "resettle-unknown").touch()
    migrate_unknown(h2, faults, "txn-lost", "h1")
    for pid in qemu_of(h2, vm_id):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not qemu_of(h2, vm_id), 30, what="h2's source QEMU to end")
    (faults / "resettle-unknown").unlink()
    wait_until(lambda: h2.vm("ctr")["state"] == "crashed", 180, what="the VM crashed at h2")
    assert hosts_of(h2, "ctr") == ["h2"]
    assert "its QEMU ended while the migration's outcome was unknown" in h2.log()
    wait_until(lambda: not os.path.exists(os.path.join(h1.run_dir, "vms", vm_id)), 60,
               what="h1's incoming VM to be removed")
    nothing_at(h1, vm_id)


def post_copy_switch_unknown(h1, faults):
    """ctr's post-copy migration from h1 to h2 whose switch applied with its
    answer lost (txn-unknown, settle-unknown): its task fails, h1's QEMU
    stopped before the switch-over, h2's incoming QEMU waiting; the
    background's settling held (resettle-unknown) and h2's claim on its
    source's silence too (incoming-claim-pause), until the test lets them."""
    for f in ("txn-unknown", "settle-unknown", "resettle-unknown", "incoming-claim-pause"):
        (faults / f).touch()
    tid = h1.api("POST", "/v1/vms/ctr/migrate", {"to": "h2", "post_copy": True},
                 expect=202)["task"]["id"]
    task = settled(h1, tid, timeout=600)
    assert task["state"] == "failed", task
    assert "has an unknown outcome" in task["error"]["message"], task


def both_qemus_killed(c, faults, vm_id):
    """post_copy_switch_unknown, then both QEMUs killed: h2's incoming one
    still waited at the switch-over (it never had the device state), h1's
    is stopped before it. Returns once h2 acts on its source's silence
    (held at incoming-claim-pause)."""
    h1, h2 = c.hosts
    post_copy_switch_unknown(h1, faults)
    for h in (h1, h2):
        for pid in qemu_of(h, vm_id):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not qemu_of(h, vm_id), 30, what=f"{h.name}'s QEMU to end")
    wait_until(lambda: not (faults / "incoming-claim-pause").exists(), 120,
               what="h2 to act on its source's silence")


def test_a_source_whose_device_state_never_left_runs_on(cluster, tmp_path):
    """A post-copy migration's switch with an unknown outcome (applied, its
    answer lost: txn-unknown, settle-unknown) leaves the source QEMU paused
    before the switch-over; h2's incoming QEMU then dies before the
    background settles it (resettle-unknown holds that settling,
    incoming-claim-pause h2's claim on its source's silence). The
    background finds the VM h2's, and the switch-over's continue fails:
    QEMU runs the guest again at h1. h1 takes the VM back and the guest
    runs on there; h2 never claims a VM its QEMU does not hold. Before, h2
    claimed it (its QEMU gone) and h1 ended its source QEMU: the guest was
    lost. The same at h1's start, then at h2's (the VM loaded there, not
    claimed, leaves h2's table once h1 took it back)."""
    c, faults, vm_id = two_hosts_counting_at_h1(cluster, tmp_path)
    h1, h2 = c.hosts
    post_copy_switch_unknown(h1, faults)
    # h2's incoming QEMU waits at the switch-over (its stream counts as
    # flowing) until it dies: then h2 acts on its source's silence.
    for pid in qemu_of(h2, vm_id):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not qemu_of(h2, vm_id), 30, what="h2's incoming QEMU to end")
    wait_until(lambda: not (faults / "incoming-claim-pause").exists(), 120,
               what="h2 to act on its source's silence")
    (faults / "incoming-claim-go").touch()
    (faults / "resettle-unknown").unlink()
    wait_until(lambda: hosts_of(h1, "ctr") == ["h1"], 180, what="the VM taken back by h1")
    counter_goes_on(h1, "ctr")
    wait_until(lambda: (h1.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               60, what="h1's VM to show running")
    assert len(qemu_of(h1, vm_id)) == 1
    nothing_at(h2, vm_id)
    assert "its QEMU holds no guest" in h2.log(), h2.log()[-4000:]
    assert "the VM was taken back" in h1.log(), h1.log()[-4000:]

    # The same at h1's start: its vireod dies right after the switch
    # (exit-after-txn), the source QEMU stopped before the switch-over, and
    # h2's incoming QEMU dies too. The start's recovery hands the rest over,
    # which fails: the source QEMU runs the guest again, and the VM is
    # taken back and adopted by h1 (before, that QEMU was ended).
    (faults / "exit-after-txn").touch()
    h1.api("POST", "/v1/vms/ctr/migrate", {"to": "h2", "post_copy": True}, expect=202)
    wait_until(lambda: h1.proc.poll() is not None, 600, what="h1's vireod to exit")
    assert not (faults / "exit-after-txn").exists()
    assert qemu_of(h1, vm_id), "the source QEMU, stopped before the switch-over, on h1"
    wait_until(lambda: qemu_of(h2, vm_id), 30, what="h2's incoming QEMU")
    for pid in qemu_of(h2, vm_id):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not qemu_of(h2, vm_id), 30, what="h2's incoming QEMU to end")
    wait_until(lambda: h2.log().count("its QEMU holds no guest") >= 2, 120,
               what="h2 not to claim the VM")
    h1.start(timeout=300)
    wait_until(lambda: (h1.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               120, what="h1's VM to show running")
    assert hosts_of(h1, "ctr") == ["h1"]
    counter_goes_on(h1, "ctr")
    assert len(qemu_of(h1, vm_id)) == 1
    nothing_at(h2, vm_id)
    assert not os.listdir(os.path.join(h1.run_dir, "migrations"))

    # The same with h2's vireod killed too, before its incoming QEMU died:
    # its start loads the VM (the store gives it to h2) but does not claim
    # it, its QEMU holding no guest; h1 takes it back and the VM leaves h2's
    # table (before, h2's start claimed it and kept it there, crashed, once
    # h1 had taken it back: listed twice).
    post_copy_switch_unknown(h1, faults)
    h2.kill9()
    for pid in qemu_of(h2, vm_id):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not qemu_of(h2, vm_id), 30, what="h2's incoming QEMU to end")
    (faults / "incoming-claim-pause").unlink()
    h2.start(timeout=300)
    wait_until(lambda: "not claimed; it waits for its source" in h2.log(), 120,
               what="h2's start to leave the VM unclaimed")
    # Not h2's to run meanwhile: the source takes it back (a start here
    # would be a second copy once it did).
    status, _ = h2.request("POST", f"/v1/vms/{vm_id}/start")
    assert status == 409, status
    (faults / "resettle-unknown").unlink()
    wait_until(lambda: hosts_of(h1, "ctr") == ["h1"], 180, what="the VM taken back by h1")
    counter_goes_on(h1, "ctr")
    wait_until(lambda: not os.listdir(os.path.join(h2.run_dir, "migrations")), 120,
               what="h2 to settle its intent")
    assert [v["host"] for v in h2.api("GET", "/v1/vms")["vms"]] == ["h1"]
    nothing_at(h2, vm_id)
    assert "its source took the VM back: the VM leaves this host" in h2.log()


def test_a_take_back_decided_late_keeps_the_only_copy(cluster, tmp_path):
    """Two take-backs whose outcome the task could not learn, each leaving
    the guest's only copy at h1 (revtake's M2, M1).

    1. The task's own path: h2's incoming QEMU dies while the task holds
    before a post-copy's switch-over (switch-over-pause), so the
    switch-over fails and QEMU runs the guest at h1 again; the take-back's
    transaction never reaches the store (take-back-txn-lost), and settling
    it rewrites h2's document, which reads as "h2 claimed the VM". The task
    takes the VM back at h2's document's revision and the guest runs on at
    h1 (before, it ended h1's QEMU, the only copy).

    2. At a start: the commit unanswered and the take-back's outcome
    unknown (commit-lost, take-back-unknown), h1's vireod is killed; at its
    start the take-back applies after the VMs were loaded and the VM was
    read at h2 (take-back-after-load; h2's claim held by
    incoming-claim-pause). h1 adopts its paused source QEMU and runs the
    guest on, and h2's claim ends its incoming QEMU (before, the QEMU was
    left paused and the VM in no host's table until h1's next start)."""
    c, faults, vm_id = two_hosts_counting_at_h1(cluster, tmp_path)
    h1, h2 = c.hosts
    for f in ("switch-over-pause", "take-back-txn-lost"):
        (faults / f).touch()
    tid = h1.api("POST", "/v1/vms/ctr/migrate", {"to": "h2", "post_copy": True},
                 expect=202)["task"]["id"]
    wait_until(lambda: not (faults / "switch-over-pause").exists(), 600,
               what="h1's task at the switch-over")
    for pid in qemu_of(h2, vm_id):
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not qemu_of(h2, vm_id), 30, what="h2's incoming QEMU to end")
    (faults / "switch-over-go").touch()
    task = settled(h1, tid, timeout=600)
    assert not (faults / "take-back-txn-lost").exists()
    assert task["state"] == "failed", task
    assert "was given back and runs on here" in task["error"]["message"], task
    assert "its QEMU here runs the guest again: the VM is taken back" in h1.log()
    assert hosts_of(h1, "ctr") == ["h1"]
    counter_goes_on(h1, "ctr")
    wait_until(lambda: (h1.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               60, what="h1's VM to show running")
    assert len(qemu_of(h1, vm_id)) == 1
    wait_until(lambda: not os.path.exists(os.path.join(h2.run_dir, "vms", vm_id)), 120,
               what="h2's incoming VM to be removed")
    nothing_at(h2, vm_id)

    migrate_not_taken_over(h1, faults, "commit-lost", "take-back-unknown", "resettle-unknown",
                           "incoming-claim-pause")
    wait_until(lambda: not (faults / "incoming-claim-pause").exists(), 120,
               what="h2 to act on its source's silence")
    h1.kill9()
    assert qemu_of(h1, vm_id), "the paused source QEMU outlives h1's vireod"
    (faults / "resettle-unknown").unlink()
    (faults / "take-back-after-load").touch()
    h1.start(timeout=300)
    assert not (faults / "take-back-after-load").exists()
    wait_until(lambda: (h1.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               120, what="h1's VM to show running")
    assert f"the late take-back of VM {vm_id}: applied" in h1.log()
    assert hosts_of(h1, "ctr") == ["h1"]
    counter_goes_on(h1, "ctr")
    (faults / "incoming-claim-go").touch()
    wait_until(lambda: not os.path.exists(os.path.join(h2.run_dir, "vms", vm_id)), 120,
               what="h2's incoming VM to be removed")
    nothing_at(h2, vm_id)
    assert len(qemu_of(h1, vm_id)) == 1
    assert not os.listdir(os.path.join(h1.run_dir, "migrations"))


def test_a_migration_that_leaves_no_qemu_crashes_the_vm_at_its_owner(cluster, tmp_path):
    """Both sides gone (docs/internals.md, "Both sides gone"): the switch
    applied, then h2's incoming QEMU (before it had the guest) and h1's
    source QEMU killed. h1 settles (the VM is h2's) and keeps nothing; h2
    asks h1, which has no QEMU of it, records the HA VM crashed naming the
    migration, and starts it again. Before, the VM sat in no host's table.
    The dead QEMU's end is handled before h2's adoption takes the VM's job
    (adopted-exit-first, as a loaded loop thread may): its handle, released
    then, is not used (before, the continue used it after it was freed)."""
    c, faults, vm_id = two_hosts_counting_at_h1(cluster, tmp_path)
    h1, h2 = c.hosts
    h1.cli("vm", "set", "ctr", "--ha", "on")
    both_qemus_killed(c, faults, vm_id)
    (faults / "adopted-exit-first").touch()
    (faults / "incoming-claim-go").touch()
    (faults / "resettle-unknown").unlink()
    # The VM is h2's: crashed there, naming the migration, then restarted by HA.
    note = wait_until(lambda: [t for t in h2.api("GET", "/v1/tasks")["tasks"]
                               if t["kind"] == "migrate" and
                               (t.get("result") or {}).get("settled") == "crashed"], 300,
                      what="h2 to record the VM crashed")[0]
    assert note["result"]["vm"] == vm_id and note["result"]["from"] == "h1", note
    assert "ended with the guest in no QEMU" in note["message"], note
    wait_until(lambda: (h2.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               300, what="HA to start the VM again at h2")
    assert hosts_of(h1, "ctr") == ["h2"]
    assert len(qemu_of(h2, vm_id)) == 1
    assert not qemu_of(h1, vm_id)
    assert "recorded crashed" in h2.log()
    assert not (faults / "adopted-exit-first").exists()
    assert "its QEMU ended before it continued" in h2.log()
    assert "lost its guest in a live migration and is still this host's: started again" in h2.log()
