"""A post-copy source whose host is fenced (docs/ha.md, "Post-copy
sources"), on three real-QEMU hosts (h1 and h3 keep etcd's quorum while h2
is cut off) with one real TCG guest, HA, on the shared pool.

The busy guest on h2 is migrated to h3 with --post-copy and held right
after the switch-over (the test fault post-copy-hold): the VM is h3's in
the store, and h2's QEMU, paused, holds the pages h3 lacks (post-copy's
background push slowed to 256 KiB/s; the memory stream's connection then
killed with ss -K, so both QEMUs pause until a recovery). Its "post-copy
source kept" mark (RUN/fence/post-copy/<vm-id>) is there and the QEMU is
off the fence's kill list. h2 is then cut off until its fence fences it:
that QEMU lives on, and once the link is back h2's reconcile after the
fencing (which ends the QEMUs of VMs that moved away) keeps it too.
Released, the migration is recovered and completes: the guest runs at h3
with its 8 MiB of random bytes intact (md5sum before and after), and
nothing is left at h2, the mark included.

Without the mark the fence kills h2's QEMU (it is an HA VM's, still on the
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
    # The source is h2 and the destination h3: h1 formed the cluster, so
    # its etcd member likely leads, and cutting the leader off makes the
    # others wait for an election, which on a loaded machine can cost the
    # destination its own lease (its incoming HA QEMU is then killed).
    _, src, dst = c.hosts
    form(c)
    shared_pool(c)
    vm_id = busy_vm(src, "busy", memory=128, dirty_mib=8)
    src.api("PATCH", "/v1/vms/busy", {"ha": True})
    ha_list = os.path.join(src.run_dir, "fence", "ha", vm_id)
    mark = os.path.join(src.run_dir, "fence", "post-copy", vm_id)
    wait_until(lambda: os.path.exists(ha_list), 30, what="busy on the source's fence kill list")
    before = guest_md5(src, "/dev/shm/src")
    (faults / "post-copy-hold").touch()
    tid = src.api("POST", "/v1/vms/busy/migrate",
                  {"to": dst.name, "post_copy": True, "max_downtime_ms": 1,
                   "bandwidth": "16M/s"}, expect=202)["task"]["id"]
    wait_until(lambda: not (faults / "post-copy-hold").exists(), 600,
               what="the migration held in post-copy")
    # The memory stream broken (as post_copy_held does: after the device
    # state loaded): both QEMUs pause, the pages the destination lacks stay
    # at the source until a recovery, so they are there through the fencing.
    time.sleep(3)
    m = re.search(r"incoming VM busy from host \S+: waiting on tcp:([0-9.]+):(\d+)", dst.log())
    assert m, "the incoming stream's address in the destination's log"
    kill_stream(src, m.group(1), m.group(2))
    [source] = qemu_of(src, vm_id)
    with open(mark) as f, open(os.path.join(dst.state_dir, "host-id")) as g:
        assert json.load(f) == {"to": g.read().strip(), "pid": source}
    assert not os.path.exists(ha_list), "a post-copy source is off the fence's kill list"

    fenced_path = os.path.join(src.run_dir, "fenced")
    c.cut_link(src)
    try:
        wait_until(lambda: os.path.exists(fenced_path), 60, what="the source host to fence itself")
        with open(fenced_path) as f:
            print("fenced:", f.read())
        assert pid_alive(source), "the fence killed the post-copy source"
    finally:
        c.heal_link(src)
    wait_until(lambda: not os.path.exists(fenced_path), 120,
               what="the source host to reconcile, unfenced")
    assert pid_alive(source), "the reconcile after the fencing ended the post-copy source"
    assert "holds pages the destination lacks: kept" in src.log()

    (faults / "post-copy-release").touch()
    task = settled(src, tid, timeout=900)
    print("task:", task.get("error"), task.get("result"))
    if task["state"] != "succeeded":
        for h in (src, dst):
            print(f"{h.name}:", "\n".join(x for x in h.log().splitlines() if "busy" in x))
    assert task["state"] == "succeeded", task
    assert task["result"]["post_copy"]["ran"], task
    log = src.log()
    assert f"post-copy to host {dst.name} broke before its commit: recovering" in log
    assert "busy: post-copy recovered" in log
    wait_until(lambda: hosts_of(dst, "busy") == [dst.name], 60, what="busy at the destination")
    one_qemu(c, vm_id, dst)
    nothing_at(src, vm_id)
    assert not os.path.exists(mark)
    assert guest_md5(dst, "/dev/shm/src") == before
