"""The destination's claim mark (docs/internals.md, "The claim mark"), on
two real-QEMU hosts with one real TCG guest on the shared pool printing a
counter on its console.

QEMU's window that revmig found: with post-copy-ram on, the return path
breaks after the destination loaded everything; the source's migration
fails and QEMU runs the guest there again, while the destination, which
holds the whole guest, claims the VM and continues it, and the answer to
the commit is lost. The source, seeing its QEMU run the guest, takes the
VM back. The test hooks stand in for QEMU's part: commit-answer-lost (the
commit applied at h2, its answer dropped at h1) and source-runs-again (h1's
source QEMU counts as running the guest again).

Before, the source took the VM back at whatever revision h2's document
had, the claim's too: the store gave the VM to h1 while h2 ran the guest.
Now h2's claim marks the document with the migration, the source never
takes back a marked document, and its own QEMU ends: the guest runs at h2
only.

The same with the take-back compared at the switch's revision unanswered
(take-back-unknown): h1's QEMU ends all the same, the task succeeds.

A second test: a take-back that applied late (after h1's start loaded its
VMs: take-back-after-load) whose source QEMU is gone (killed while h1's
vireod was down). The VM is h1's again: it is loaded and recorded crashed
at once (before, it sat in no host's table until h1's next start). It is
an HA VM: h1 starts it again, counted against the restart limit, once its
fence and HA retrier run (this recovery runs before them at vireod's
start); before, it stayed crashed. The same with the source QEMU killed
by h1's fence: its own restart and the take-back's both take the VM, the
first held until the other comes; started and counted once (before,
twice, and a second start failed).

A third: both sides gone (docs/internals.md), h2's adoption of the orphan
refused each round (orphan-adopt-fails): h2 says so once, not every 10 s
(before, "recorded crashed" every round, and before the adoption that
failed), and records the VM crashed once the adoption goes through."""

import os
import re
import signal
import time

import pytest

from test_ha_fence import write_fenced
from test_migrate import hosts_of, qemu_of
from test_migrate_resettle import (both_qemus_killed, migrate_not_taken_over,
                                   two_hosts_counting_at_h1)
from test_migrate_robust import counter_goes_on, nothing_at, settled

from vireo_harness import wait_until


# take-back-unknown: the take-back compared at the switch's revision gets no
# answer too, so the task cannot tell whether it applied; the mark still
# says h2 claimed the VM (before, h1's QEMU ran on beside h2's, the task
# failed and the intent waited for the background).
@pytest.mark.parametrize("unknown", [(), ("take-back-unknown",)],
                         ids=["take-back-refused", "take-back-unknown"])
def test_a_claimed_vm_is_never_taken_back(cluster, tmp_path, unknown):
    c, faults, vm_id = two_hosts_counting_at_h1(cluster, tmp_path)
    h1, h2 = c.hosts
    hooks = ("commit-answer-lost", "source-runs-again") + unknown
    for f in hooks:
        (faults / f).touch()
    tid = h1.api("POST", "/v1/vms/ctr/migrate", {"to": "h2"}, expect=202)["task"]["id"]
    task = settled(h1, tid, timeout=600)
    assert not [f for f in hooks if (faults / f).exists()]
    # The store gives the VM to h2, whose QEMU runs it; h1 keeps none.
    assert hosts_of(h1, "ctr") == ["h2"]
    nothing_at(h1, vm_id)
    assert "claimed the VM (its QEMU holds the guest and runs it): this copy ends" \
        in h1.log(), h1.log()[-4000:]
    counter_goes_on(h2, "ctr")
    assert len(qemu_of(h2, vm_id)) == 1
    assert hosts_of(h2, "ctr") == ["h2"]
    assert task["state"] == "succeeded", task


def late_take_back_qemu_gone(cluster, tmp_path):
    """The HA VM ctr's migration from h1 whose take-back applies late
    (take-back-after-load, once h1 starts again), h1's vireod and its
    source QEMU killed. Returns (c, faults, ctr's id, the QEMU's pid)."""
    c, faults, vm_id = two_hosts_counting_at_h1(cluster, tmp_path)
    h1 = c.hosts[0]
    h1.cli("vm", "set", "ctr", "--ha", "on")
    migrate_not_taken_over(h1, faults, "commit-lost", "take-back-unknown", "resettle-unknown",
                           "incoming-claim-pause")
    wait_until(lambda: not (faults / "incoming-claim-pause").exists(), 120,
               what="h2 to act on its source's silence")
    h1.kill9()
    pids = qemu_of(h1, vm_id)
    assert pids, "the paused source QEMU outlives h1's vireod"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not qemu_of(h1, vm_id), 30, what="h1's source QEMU to end")
    (faults / "resettle-unknown").unlink()
    (faults / "take-back-after-load").touch()
    return c, faults, vm_id, pids[0]


def test_a_late_take_back_whose_qemu_is_gone_restarts_the_ha_vm(cluster, tmp_path):
    c, faults, vm_id, _ = late_take_back_qemu_gone(cluster, tmp_path)
    h1, h2 = c.hosts
    h1.start(timeout=300)
    assert not (faults / "take-back-after-load").exists()
    # Recorded crashed (the event), then started again by HA, not by a user,
    # once h1's fence and HA retrier ran (this recovery runs before them).
    wait_until(lambda: (h1.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               300, what="HA to start h1's VM again")
    log = h1.log()
    assert f"the late take-back of VM {vm_id}: applied" in log
    assert "loaded: its source QEMU here is gone" in log
    assert "its source QEMU here is adopted" not in log
    queued = log.index("migration's late take-back applied: it is started again here once "
                       "the fence and the HA retrier run")
    restarted = log.index("migration's late take-back applied and is still this host's: "
                          "started again here")
    fence = re.compile(r"(adopted the running|started the) fence process").search(log, queued)
    assert fence and queued < fence.start() < restarted, log[-4000:]
    events = h1.api("GET", "/v1/tasks")["tasks"]
    assert any("recorded crashed here" in (t.get("message") or "") for t in events), events
    assert len(h1.vm("ctr").get("ha_restarts") or []) == 1, h1.vm("ctr")
    assert hosts_of(h1, "ctr") == ["h1"]
    assert not os.listdir(os.path.join(h1.run_dir, "migrations"))
    (faults / "incoming-claim-go").touch()
    wait_until(lambda: not os.path.exists(os.path.join(h2.run_dir, "vms", vm_id)), 120,
               what="h2's incoming VM to be removed")
    nothing_at(h2, vm_id)
    assert len(qemu_of(h1, vm_id)) == 1


def test_a_late_take_back_the_fence_killed_restarts_the_ha_vm_once(cluster, tmp_path):
    """The same, the source QEMU killed by h1's fence (RUN/fenced names
    it): the fenced host's own restart and the restart the take-back
    queued both take the VM; the first is held (ha_restart@ctr) until the
    other came. It is started and counted once (before, both counted it
    and asked for a start)."""
    c, faults, vm_id, qemu = late_take_back_qemu_gone(cluster, tmp_path)
    h1 = c.hosts[0]
    holds = tmp_path / "holds"
    holds.mkdir()
    h1.env["VIREO_FAKE_FAULTS"] = str(holds)
    (holds / "ha_restart@ctr.hold").touch()
    fenced = write_fenced(h1, vm_id, qemu)
    h1.start(timeout=300)
    wait_until(lambda: (holds / "ha_restart@ctr.held").exists(), 300,
               what="a restart of h1's VM to be held")
    wait_until(lambda: not os.path.exists(fenced), 120, what="h1 no longer fenced")
    time.sleep(5)  # the other restart comes meanwhile (the retrier's round: every 2 s)
    (holds / "ha_restart@ctr.hold").unlink()
    wait_until(lambda: (h1.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "running",
               300, what="HA to start h1's VM again")
    # The other restart finds the first's start under way, or the VM running.
    wait_until(lambda: "lost its QEMU before its migration's late take-back applied, but is "
               "not started again: " in h1.log() or "was killed by this host's fence, but is "
               "not started again: " in h1.log(), 120, what="the other restart to be dropped")
    log = h1.log()
    assert log.count("and is still this host's: started again here") == 1, log[-4000:]
    assert len(h1.vm("ctr").get("ha_restarts") or []) == 1, h1.vm("ctr")
    assert len(qemu_of(h1, vm_id)) == 1


def test_an_orphan_whose_adoption_fails_is_logged_once(cluster, tmp_path):
    c, faults, vm_id = two_hosts_counting_at_h1(cluster, tmp_path)
    h1, h2 = c.hosts
    both_qemus_killed(c, faults, vm_id)
    (faults / "orphan-adopt-fails").touch()
    (faults / "incoming-claim-go").touch()
    (faults / "resettle-unknown").unlink()
    tried = "claiming and adopting it as an orphan"
    wait_until(lambda: h2.log().count(tried) >= 3, 300, what="h2 to try the adoption 3 times")
    log = h2.log()
    assert log.count("test fault: the adoption is refused") == 1, log[-4000:]
    # Not said before the adoption goes through (before, said at once).
    assert "the VM is this host's: recorded crashed" not in log, log[-4000:]
    (faults / "orphan-adopt-fails").unlink()
    wait_until(lambda: (h2.request("GET", "/v1/vms/ctr")[1] or {}).get("state") == "crashed",
               120, what="h2 to record the VM crashed")
    assert h2.log().count("the VM is this host's: recorded crashed") == 1
    assert hosts_of(h1, "ctr") == ["h2"]
