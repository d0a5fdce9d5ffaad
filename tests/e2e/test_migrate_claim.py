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
only."""

from test_migrate import hosts_of, qemu_of
from test_migrate_resettle import two_hosts_counting_at_h1
from test_migrate_robust import counter_goes_on, nothing_at, settled


def test_a_claimed_vm_is_never_taken_back(cluster, tmp_path):
    c, faults, vm_id = two_hosts_counting_at_h1(cluster, tmp_path)
    h1, h2 = c.hosts
    for f in ("commit-answer-lost", "source-runs-again"):
        (faults / f).touch()
    tid = h1.api("POST", "/v1/vms/ctr/migrate", {"to": "h2"}, expect=202)["task"]["id"]
    task = settled(h1, tid, timeout=600)
    assert not (faults / "commit-answer-lost").exists()
    assert not (faults / "source-runs-again").exists()
    # The store gives the VM to h2, whose QEMU runs it; h1 keeps none.
    assert hosts_of(h1, "ctr") == ["h2"]
    nothing_at(h1, vm_id)
    assert "claimed the VM (its QEMU holds the guest and runs it): this copy ends" \
        in h1.log(), h1.log()[-4000:]
    counter_goes_on(h2, "ctr")
    assert len(qemu_of(h2, vm_id)) == 1
    assert hosts_of(h2, "ctr") == ["h2"]
    assert task["state"] == "succeeded", task

