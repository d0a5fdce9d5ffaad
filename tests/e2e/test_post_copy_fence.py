"""A post-copy source whose host is fenced (docs/ha.md, "Post-copy
sources"), on three real-QEMU hosts (h2 and h3 keep etcd's quorum while h1
is cut off) with one real TCG guest, HA, on the shared pool.

The busy guest on h1 is migrated to h2 with --post-copy and held right
after the switch-over (the test fault post-copy-hold): the VM is h2's in
the store, and h1's QEMU, paused, holds the pages h2 lacks (post-copy's
background push slowed to 256 KiB/s; the memory stream's connection then
killed with ss -K, so both QEMUs pause until a recovery). Its "post-copy
source kept" mark (RUN/fence/post-copy/<vm-id>) is there and the QEMU is
off the fence's kill list. h1 is then cut off until its fence fences it:
that QEMU lives on, and once the link is back h1's reconcile after the
fencing (which ends the QEMUs of VMs that moved away) keeps it too.
Released, the migration is recovered and completes: the guest runs at h2
with its 8 MiB of random bytes intact (md5sum before and after), and
nothing is left at h1, the mark included.

Without the mark the fence kills h1's QEMU (it is an HA VM's, still on the
kill list), or the reconcile does, and the guest's missing pages are lost."""

import json
import os
import re
import time

from test_migrate import form, hosts_of, qemu_of, shared_pool
from test_migrate_converge import guest_md5, kill_stream
from test_migrate_robust import busy_vm, cluster_with_faults, one_qemu, nothing_at, settled

from vireo_harness import pid_alive, wait_until


def test_a_fenced_host_keeps_its_post_copy_source(cluster, tmp_path):
    hooks = {"VIREO_TEST_MIGRATE_POST_COPY_BANDWIDTH": str(256 << 10)}
    os.environ.update(hooks)
    try:
        c, faults = cluster_with_faults(cluster, tmp_path, 3)
    finally:
        for k in hooks:
            del os.environ[k]
    h1, h2, _ = c.hosts
    form(c)
    shared_pool(c)
    vm_id = busy_vm(h1, "busy", memory=128, dirty_mib=8)
    h1.api("PATCH", "/v1/vms/busy", {"ha": True})
    ha_list = os.path.join(h1.run_dir, "fence", "ha", vm_id)
    mark = os.path.join(h1.run_dir, "fence", "post-copy", vm_id)
    wait_until(lambda: os.path.exists(ha_list), 30, what="busy on h1's fence kill list")
    before = guest_md5(h1, "/dev/shm/src")
    (faults / "post-copy-hold").touch()
    tid = h1.api("POST", "/v1/vms/busy/migrate",
                 {"to": "h2", "post_copy": True, "max_downtime_ms": 1,
                  "bandwidth": "16M/s"}, expect=202)["task"]["id"]
    wait_until(lambda: not (faults / "post-copy-hold").exists(), 600,
               what="the migration held in post-copy")
    # The memory stream broken (as post_copy_held does: after the device
    # state loaded): both QEMUs pause, the pages h2 lacks stay at h1 until
    # a recovery, so they are there through the fencing.
    time.sleep(3)
    m = re.search(r"incoming VM busy from host \S+: waiting on tcp:([0-9.]+):(\d+)", h2.log())
    assert m, "the incoming stream's address in h2's log"
    kill_stream(h1, m.group(1), m.group(2))
    [source] = qemu_of(h1, vm_id)
    with open(mark) as f, open(os.path.join(h2.state_dir, "host-id")) as g:
        assert json.load(f) == {"to": g.read().strip()}
    assert not os.path.exists(ha_list), "a post-copy source is off the fence's kill list"

    fenced_path = os.path.join(h1.run_dir, "fenced")
    c.cut_link(h1)
    try:
        wait_until(lambda: os.path.exists(fenced_path), 60, what="h1 to fence itself")
        with open(fenced_path) as f:
            print("fenced:", f.read())
        assert pid_alive(source), "the fence killed the post-copy source"
    finally:
        c.heal_link(h1)
    wait_until(lambda: not os.path.exists(fenced_path), 120, what="h1 to reconcile, unfenced")
    assert "holds pages the destination lacks: kept" in h1.log()
    assert pid_alive(source), "the reconcile after the fencing ended the post-copy source"

    (faults / "post-copy-release").touch()
    task = settled(h1, tid, timeout=900)
    print("task:", task.get("error"), task.get("result"))
    assert task["state"] == "succeeded", task
    assert task["result"]["post_copy"]["ran"], task
    log1 = h1.log()
    assert "post-copy to host h2 broke before its commit: recovering" in log1
    assert "busy: post-copy recovered" in log1
    wait_until(lambda: hosts_of(h2, "busy") == ["h2"], 60, what="busy on h2")
    one_qemu(c, vm_id, h2)
    nothing_at(h1, vm_id)
    assert not os.path.exists(mark)
    assert guest_md5(h2, "/dev/shm/src") == before
