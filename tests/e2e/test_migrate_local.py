"""Live migration of a VM with LOCAL disks between two hosts of a real
cluster (cluster_harness; driver qemu, a real TCG guest): a linked-clone
root disk (made from the default image, as `vm create` makes it) and a
second data disk, both on h1's own `default` pool. The guest formats the
data disk and runs a loop that writes files on it, each followed by its
checksum (synced), all through the migration. First a migration limited
to 1 MiB/s is cancelled while its disks copy (phase "disks"): the VM runs
on at h1 with its disks, and h2 has nothing (no QEMU, no run dir, no
volume, no file). Then one is cancelled just as its disks came in sync,
before the memory copy began (held there: VIREO_TEST_MIGRATE_FAULT's
disks-synced-hold): its disk mirrors end too (left behind, every later
migration of the VM would fail on them). Then the migration completes
with the guest RAM compared on both paused sides (verify_memory): the VM
runs on h2, its volumes are h2's (`volume list`), h1's files and
documents of them are gone, and inside the guest on h2 every file's
checksum matches, the writer having gone on through the move."""

import os
import re
import time

from vireo_harness import BOOT_MARKER, wait_until

from test_migrate import form, hosts_of, migrate, qemu_of, start_counter, ticks
from test_migrate_robust import cluster_with_faults

MiB = 1 << 20

# The guest's writer: files f0..f19 rewritten in turn on the data disk, each
# with random data, synced, then its checksum beside it (renamed in place,
# synced): a file whose .sum exists is complete; /mnt/d/count says how many.
WRITER = ("(i=0; while [ $i -lt 100000 ]; do j=$((i%20)); rm -f /mnt/d/f$j.sum; "
          "dd if=/dev/urandom of=/mnt/d/f$j bs=64k count=4 2>/dev/null; sync; "
          "sha256sum /mnt/d/f$j > /mnt/d/f$j.sum.tmp; mv /mnt/d/f$j.sum.tmp /mnt/d/f$j.sum; "
          "i=$((i+1)); echo $i > /mnt/d/count; sync; done) </dev/null >/dev/null 2>&1 & "
          "echo $! > /tmp/w.pid")


def written(h, name):
    out = h.guest(name, "cat /mnt/d/count")
    found = re.findall(r"^(\d+)\s*$", out, re.M)
    return int(found[-1]) if found else 0


def assert_files_whole(h, name):
    """The writer stopped, every complete file's checksum matches inside
    the guest on h, and the file written before the move is there."""
    out = h.guest(name, "kill $(cat /tmp/w.pid); sleep 1; sync; n=0; bad=0; "
                        "for s in /mnt/d/*.sum; do if sha256sum -c -s $s; then n=$((n+1)); "
                        "else bad=$((bad+1)); fi; done; echo CHECK n=$n bad=$bad; "
                        "cat /mnt/d/before.txt", timeout=120)
    m = re.search(r"CHECK n=(\d+) bad=(\d+)", out)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) == 0, out
    assert "before-the-move" in out, out


def task_end(h, tid, timeout):
    return wait_until(lambda: (lambda t: t if t["state"] in
                               ("succeeded", "failed", "cancelled") else None)(
        h.api("GET", f"/v1/tasks/{tid}")), timeout, what=f"task {tid} to end")


def test_local_disks_migrate_with_writes_in_flight(cluster, tmp_path):
    c, faults = cluster_with_faults(cluster, tmp_path, 2)
    form(c)
    h1, h2 = c.hosts
    body = {"name": "loc", "memory_mib": 256, "host": "h1", "networks": ["user"]}
    status, doc = h1.request("POST", "/v1/vms", body)
    deadline = time.monotonic() + 30
    while status == 503 and time.monotonic() < deadline:  # no confirmed manager yet
        time.sleep(0.5)
        status, doc = h1.request("POST", "/v1/vms", body)
    assert status == 202, doc
    assert h1.wait_task(doc["task"], timeout=180)["state"] == "succeeded"
    h1.task_ok("POST", "/v1/vms/loc/disks", {"size_bytes": 64 * MiB})
    vm_id = h1.vm("loc")["id"]
    keys = [d["volume"] for d in h1.vm("loc")["disks"]]
    assert len(keys) == 2 and all(k.startswith("default/") for k in keys), keys
    names = [k.split("/")[1] for k in keys]
    src = {k: h1.api("GET", "/v1/pools/default/volumes/" + k.split("/")[1]) for k in keys}
    assert src[keys[0]]["image"], src  # the root disk is a linked clone of the image
    src_files = [v["path"] for v in src.values()]
    dst_dir = h2.api("GET", "/v1/pools/default")["path"]

    h1.cli("vm", "start", "loc")
    h1.wait_console("loc", BOOT_MARKER, timeout=240)
    out = h1.guest("loc", "mke2fs -q /dev/vdb && mkdir -p /mnt/d && mount /dev/vdb /mnt/d && "
                          "echo before-the-move > /mnt/d/before.txt && sync && echo SET-UP",
                   timeout=120)
    assert "SET-UP" in out, out
    h1.guest("loc", WRITER)
    wait_until(lambda: written(h1, "loc") >= 3, 120, what="the writer under way")
    start_counter(h1, "loc")

    # Cancelled while the disks copy (1 MiB/s: slow): runs on at h1 with its
    # disks; nothing of it on h2.
    doc = h1.api("POST", "/v1/vms/loc/migrate", {"to": "h2", "bandwidth": "1M/s"}, expect=202)
    tid = doc["task"]["id"]
    wait_until(lambda: (h1.api("GET", f"/v1/tasks/{tid}").get("details") or {}).get("phase")
               == "disks" and qemu_of(h2, vm_id), 300, what="the disks copying")
    assert all(os.path.exists(os.path.join(dst_dir, n + ".qcow2")) for n in names), \
        os.listdir(dst_dir)
    h1.api("POST", f"/v1/tasks/{tid}/cancel", expect=202)
    task = task_end(h1, tid, 120)
    assert task["state"] == "cancelled", task
    assert h1.vm("loc")["state"] == "running" and "migration" not in h1.vm("loc")
    wait_until(lambda: not qemu_of(h2, vm_id), 30, what="no QEMU of the VM on h2")
    assert not os.path.exists(os.path.join(h2.run_dir, "vms", vm_id))
    assert not [f for f in os.listdir(dst_dir) if any(f.startswith(n) for n in names)], \
        os.listdir(dst_dir)
    on_h2 = [v["name"] for v in h2.api("GET", "/v1/volumes?pool=default")["volumes"]]
    assert not set(names) & set(on_h2), on_h2
    assert all(os.path.exists(f) for f in src_files)
    n0 = written(h1, "loc")
    wait_until(lambda: written(h1, "loc") > n0, 60, what="the writer goes on after the cancel")

    # Cancelled as the disks came in sync, before the memory copy: the
    # mirrors end with it (the migration below would find them otherwise:
    # "the disks are being mirrored already").
    (faults / "disks-synced-hold").touch()
    tid = h1.api("POST", "/v1/vms/loc/migrate", {"to": "h2"}, expect=202)["task"]["id"]
    wait_until(lambda: not (faults / "disks-synced-hold").exists(), 600,
               what="the disks in sync")
    h1.api("POST", f"/v1/tasks/{tid}/cancel", expect=202)
    (faults / "disks-synced-go").touch()
    task = task_end(h1, tid, 120)
    assert task["state"] == "cancelled", task
    assert h1.vm("loc")["state"] == "running" and "migration" not in h1.vm("loc")
    wait_until(lambda: not qemu_of(h2, vm_id), 30, what="no QEMU of the VM on h2")

    # The whole migration, RAM compared on both paused sides.
    before = written(h1, "loc")
    task = migrate(h1, "loc", {"to": "h2", "verify_memory": True}, timeout=900)
    res = task["result"]
    assert res["memory_verified"] is True and res["to"] == "h2", res
    assert sorted(res["volumes"]) == sorted(keys), res
    for h in (h1, h2):
        wait_until(lambda: hosts_of(h, "loc") == ["h2"], 30, what=f"loc on h2 seen from {h.name}")
    vm = h2.vm("loc")
    assert vm["state"] == "running" and [d["volume"] for d in vm["disks"]] == keys, vm
    # The volumes are h2's, attached to the VM; h1 has neither files nor documents.
    vols = {v["key"]: v for v in h2.api("GET", "/v1/volumes?pool=default")["volumes"]}
    for k in keys:
        assert vols[k]["attached_to"] == "loc" and os.path.exists(vols[k]["path"]), vols
    assert vols[keys[0]]["image"], vols[keys[0]]  # still a linked clone of the image there
    out = h2.cli("volume", "list", "default").stdout
    assert all(n in out for n in names), out
    assert not [f for f in src_files if os.path.exists(f)]
    on_h1 = [v["name"] for v in h1.api("GET", "/v1/volumes?pool=default")["volumes"]]
    assert not set(names) & set(on_h1), on_h1
    assert not os.path.exists(os.path.join(h1.run_dir, "vms", vm_id))

    # The guest went on: the counter, the writer; every complete file's
    # checksum matches inside the guest on h2.
    tick = max(ticks(h2.console_log("loc")))
    wait_until(lambda: max(ticks(h2.console_log("loc"))) >= tick + 2, 60,
               what="the counter goes on on h2")
    wait_until(lambda: written(h2, "loc") > before, 60, what="the writer goes on on h2")
    assert_files_whole(h2, "loc")
    h2.cli("vm", "stop", "loc", "--force")
