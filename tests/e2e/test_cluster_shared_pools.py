"""Shared pools on a real 3-host cluster (cluster_harness: each host a
network namespace with its own vireod and etcd member; one shared directory
every host sees, as an NFS mount would be): a pool created on one host is
reachable on all, a volume made on one is listed on the others, a
non-shareable volume has one VM in the whole cluster (also when two hosts
attach it at once), and a host that does not see the directory reports the
pool unreachable with why and leaves it out of its record."""

import os
import subprocess
import threading

from vireo_harness import wait_until

MiB = 1 << 20
MARKER = ".vireo-pool.json"


def form(c):
    h1 = c.hosts[0]
    h1.cli_json("cluster", "init", "--address", h1.address)
    h1.use_cluster_certs()
    for h in c.hosts[1:]:
        tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
        h.cli_json("cluster", "join", f"{h1.address}:{h1.port}", "--token", tok["token"],
                   "--address", h.address)
        h.use_cluster_certs()
    names = sorted(h.name for h in c.hosts)
    wait_until(lambda: sorted(x["name"] for x in h1.api("GET", "/v1/hosts")["hosts"]
                              if x["state"] == "online") == names, 30, what="hosts online")


def pool_on(h, name):
    status, doc = h.request("GET", f"/v1/pools/{name}")
    return doc if status == 200 else None


def record_pools(seen_from, host):
    for x in seen_from.api("GET", "/v1/hosts")["hosts"]:
        if x["name"] == host.name:
            return x.get("pools", []), x.get("pools_unreachable", {})
    return [], {}


def volume_names(h, pool):
    return sorted(v["name"] for v in h.api("GET", f"/v1/volumes?pool={pool}")["volumes"])


def test_shared_pool_on_three_hosts(cluster):
    c = cluster(3, listen=False)
    h1, h2, h3 = c.hosts
    form(c)
    path = os.path.join(c.shared_dir, "pool")
    os.makedirs(path)

    # Created on h1: every host has it, reaches it, and lists it in its record.
    p = h1.api("POST", "/v1/pools", {"name": "nfs", "path": path, "shared": True}, expect=201)
    for h in c.hosts:
        wait_until(lambda: (pool_on(h, "nfs") or {}).get("reachable"), 30,
                   what=f"nfs reachable on {h.name}")
        assert pool_on(h, "nfs")["id"] == p["id"]
    for h in c.hosts:
        wait_until(lambda: "nfs" in record_pools(h1, h)[0], 30,
                   what=f"record of {h.name} lists nfs")
    shown = h2.api("GET", "/v1/pools/nfs")
    assert sorted((x["host"], x["reachable"]) for x in shown["hosts"]) == \
        [("h1", True), ("h2", True), ("h3", True)]
    assert "h3:" in h3.cli("pool", "show", "nfs").stdout
    # The name is the cluster's: another host cannot make it again, nor a
    # second pool on the same directory.
    other = os.path.join(c.shared_dir, "other")
    os.makedirs(other)
    status, doc = h3.request("POST", "/v1/pools", {"name": "nfs", "path": other, "shared": True})
    assert status == 409 and "already exists" in doc["error"]["message"]
    assert not os.path.exists(os.path.join(other, MARKER))
    status, doc = h2.request("POST", "/v1/pools", {"name": "again", "path": path,
                                                   "shared": True})
    assert status == 409 and "'nfs'" in doc["error"]["message"]

    # A volume made on h2 is listed on h1 and h3, with its file in the share.
    h2.task_ok("POST", "/v1/pools/nfs/volumes", {"name": "data", "size_bytes": 4 * MiB})
    for h in (h1, h3):
        wait_until(lambda: volume_names(h, "nfs") == ["data"], 30,
                   what=f"nfs/data listed on {h.name}")
    assert os.path.exists(os.path.join(path, "data.qcow2"))

    # A non-shareable volume has one VM in the cluster: a on h1 has it, b
    # on h2 is refused, and h3 cannot delete it.
    h1.task_ok("POST", "/v1/vms", {"name": "a", "memory_mib": 64, "host": "h1"})
    h2.task_ok("POST", "/v1/vms", {"name": "b", "memory_mib": 64, "host": "h2"})
    h1.task_ok("POST", "/v1/vms/a/disks", {"volume": "nfs/data"})
    wait_until(lambda: h2.api("GET", "/v1/pools/nfs/volumes/data")["attached_to"] == "a", 30,
               what="h2 sees nfs/data attached")
    assert h2.api("GET", "/v1/pools/nfs/volumes/data")["attached_host"] == "h1"
    status, body = h2.request("POST", "/v1/vms/b/disks", {"volume": "nfs/data"})
    if status == 202:  # refused by the task, where the cluster's lock is taken
        task = h2.wait_task(body["task"])
        assert task["state"] == "failed", task
        message = task["error"]["message"]
    else:
        assert status == 409, body
        message = body["error"]["message"]
    assert "VM 'a'" in message and "h1" in message, message
    status, body = h3.request("DELETE", "/v1/pools/nfs/volumes/data")
    assert status == 409 and "VM 'a'" in body["error"]["message"], body

    # Two hosts attaching one fresh volume at once: exactly one gets it.
    h3.task_ok("POST", "/v1/pools/nfs/volumes", {"name": "race", "size_bytes": MiB})
    h1.task_ok("POST", "/v1/vms", {"name": "a2", "memory_mib": 64, "host": "h1"})
    for h in (h1, h2):
        wait_until(lambda: "race" in volume_names(h, "nfs"), 30, what="race listed")
    results = {}

    def attach(h, vm):
        status, body = h.request("POST", f"/v1/vms/{vm}/disks", {"volume": "nfs/race"})
        if status == 202:
            results[vm] = h.wait_task(body["task"])["state"] == "succeeded"
        else:
            results[vm] = False

    threads = [threading.Thread(target=attach, args=(h1, "a2")),
               threading.Thread(target=attach, args=(h2, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results.values()) == [False, True], results
    winner = [vm for vm, ok in results.items() if ok][0]
    wait_until(lambda: h3.api("GET", "/v1/pools/nfs/volumes/race")["attached_to"] == winner,
               30, what="h3 sees the winner")
    assert h3.api("GET", "/v1/pools/nfs/volumes/race")["attached_host"] == \
        ("h1" if winner == "a2" else "h2")

    # Detached, the volume is deleted from another host and goes everywhere.
    h1.task_ok("DELETE", "/v1/vms/a/disks/1")
    h3.task_ok("DELETE", "/v1/pools/nfs/volumes/data")
    for h in (h1, h2):
        wait_until(lambda: "data" not in volume_names(h, "nfs"), 30,
                   what=f"nfs/data gone on {h.name}")
    assert not os.path.exists(os.path.join(path, "data.qcow2"))

    # An image imported on h1 into the shared pool is every host's: h2
    # lists it and makes a VM from it (a linked clone of the shared file).
    disk = os.path.join(c.tmp, "base.raw")
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", disk, "4M"], check=True)
    h1.task_ok("POST", "/v1/images", {"name": "base", "import_path": disk, "pool": "nfs"})
    wait_until(lambda: "base" in {i["name"] for i in h2.api("GET", "/v1/images")["images"]},
               30, what="h2 lists image base")
    assert h2.api("GET", "/v1/images/base")["pool"] == "nfs"
    h2.task_ok("POST", "/v1/vms", {"name": "fromshared", "image": "base", "memory_mib": 64,
                                   "host": "h2"})
    boot = h2.api("GET", "/v1/vms/fromshared/disks")["disks"][0]["volume"]
    pool_name, vol_name = boot.split("/")
    backing = h2.api("GET", f"/v1/pools/{pool_name}/volumes/{vol_name}")["backing"]
    assert backing[0]["path"] == os.path.join(path, ".images", "base", "disk.qcow2")
    # In use on h2: h1 cannot delete it.
    status, body = h1.request("DELETE", "/v1/images/base")
    assert status == 409, body

    # Two hosts importing one name into the shared pool at once: one makes
    # it, the other is refused, and the image is whole.
    outcome = {}

    def import_on(h):
        status, body = h.request("POST", "/v1/images", {"name": "twin", "import_path": disk,
                                                        "pool": "nfs"})
        if status == 202:
            task = h.wait_task(body["task"])
            outcome[h.name] = (task["state"] == "succeeded",
                               (task.get("error") or {}).get("message", ""))
        else:
            outcome[h.name] = (False, body["error"]["message"] if status == 409 else str(body))

    threads = [threading.Thread(target=import_on, args=(h,)) for h in (h1, h2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(ok for ok, _ in outcome.values()) == [False, True], outcome
    refused = [m for ok, m in outcome.values() if not ok][0]
    assert "twin" in refused and ("being made" in refused or "exists" in refused), refused
    twin = os.path.join(path, ".images", "twin")
    assert os.path.exists(os.path.join(twin, "image.json"))
    subprocess.run(["qemu-img", "check", "-q", os.path.join(twin, "disk.qcow2")], check=True)
    assert not [n for n in os.listdir(os.path.join(path, ".images")) if n.startswith(".build-")]
    wait_until(lambda: h3.request("GET", "/v1/images/twin")[0] == 200, 30, what="h3 sees twin")
    h3.api("DELETE", "/v1/images/twin")

    # For the unreachable pool below: a volume and a VM on h3.
    h1.task_ok("POST", "/v1/pools/nfs/volumes", {"name": "spare", "size_bytes": MiB})
    h3.task_ok("POST", "/v1/vms", {"name": "c", "memory_mib": 64, "host": "h3"})
    wait_until(lambda: "spare" in volume_names(h3, "nfs"), 30, what="spare listed on h3")

    # h3 does not see the share (an empty directory mounted over it in its
    # vireod's mount namespace, as an NFS mount that is missing would be):
    # unreachable there with why, and its record leaves the pool out.
    pid = str(h3.proc.pid)
    subprocess.run(["nsenter", "-t", pid, "-m", "mount", "-t", "tmpfs", "-o", "size=1m",
                    "vireo-test", path], check=True)
    try:
        wait_until(lambda: not pool_on(h3, "nfs")["reachable"], 30, what="h3 unreachable")
        assert "no pool marker" in pool_on(h3, "nfs")["reason"]
        wait_until(lambda: "nfs" not in record_pools(h1, h3)[0], 30, what="h3's record")
        assert "no pool marker" in record_pools(h1, h3)[1]["nfs"]
        shown = {x["host"]: x for x in h1.api("GET", "/v1/pools/nfs")["hosts"]}
        assert shown["h1"]["reachable"] and shown["h2"]["reachable"]
        assert not shown["h3"]["reachable"] and "no pool marker" in shown["h3"]["reason"]
        status, body = h3.request("POST", "/v1/pools/nfs/volumes", {"name": "x",
                                                                   "size_bytes": MiB})
        assert status == 409 and "not reachable" in body["error"]["message"]
        # Nor attached, deleted (the document stays), or a VM made from
        # its image there.
        status, body = h3.request("POST", "/v1/vms/c/disks", {"volume": "nfs/spare"})
        if status == 202:
            task = h3.wait_task(body["task"])
            assert task["state"] == "failed", task
            message = task["error"]["message"]
        else:
            assert status == 409, body
            message = body["error"]["message"]
        assert "pool 'nfs' is not reachable on this host" in message, message
        status, body = h3.request("DELETE", "/v1/pools/nfs/volumes/spare")
        assert status == 409 and "pool 'nfs' is not reachable" in body["error"]["message"], body
        assert "spare" in volume_names(h1, "nfs")
        status, body = h3.request("POST", "/v1/vms", {"name": "d", "image": "base",
                                                      "memory_mib": 64, "host": "h3"})
        assert status == 409 and "pool 'nfs' is not reachable" in body["error"]["message"], body
    finally:
        subprocess.run(["nsenter", "-t", pid, "-m", "umount", "-l", path], check=False)
    wait_until(lambda: pool_on(h3, "nfs")["reachable"], 30, what="h3 reachable again")
    wait_until(lambda: "nfs" in record_pools(h1, h3)[0], 30, what="h3's record again")
