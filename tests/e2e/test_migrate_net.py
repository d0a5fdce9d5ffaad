"""Live migration of VMs with real networking and hot-plugged hardware, on
the multi-host harness (cluster_harness: a netns per host with its own
vireod and etcd member; the VMs' disks on a shared pool; real TCG guests;
every migration with verify_memory: guest RAM compared on both sides).

* A VM on a cluster nat network moves h1 -> h3 while a VM on h2 keeps a TCP
  connection to it open: the client on A sends a numbered line every 0.5 s
  over one connection (busybox nc, never reopened), the server on B prints
  each on its console; the numbers go on consecutively after the move. A
  keeps its IP (in the guest and in the API), still reaches B by name, and
  h1 keeps nothing of it (no tap, no per-MAC FDB entry, no DHCP host or
  lease), while h2's FDB entry for A's MAC points at h3; a file A wrote
  before the move is read back after.
* A VM hot-plugged before the move (a disk on the shared pool, a NIC, a
  vCPU) arrives with the same hardware (the guest counts its disks, NICs
  and CPUs), its console counter goes on and a file written before is read
  back, its console log continues, `vireo events` on another host shows the
  move, and it migrates back."""

import json
import os
import re
import time

from vireo_harness import BOOT_MARKER, wait_until

from test_migrate import (counter_goes_on, form, hosts_of, migrate, shared_pool, start_counter,
                          stop_counter, ticks)

SUBNET = "10.91.0"
PORT = 7000


def create_on(h, name, networks, memory=128, **extra):
    body = {"name": name, "memory_mib": memory, "host": h.name, "full_clone": True,
            "networks": networks, "pool": "nfs", **extra}
    status, doc = h.request("POST", "/v1/vms", body)
    deadline = time.monotonic() + 30
    while status == 503 and time.monotonic() < deadline:  # no confirmed manager yet
        time.sleep(0.5)
        status, doc = h.request("POST", "/v1/vms", body)
    assert status == 202, doc
    task = h.wait_task(doc["task"], timeout=180)
    assert task["state"] == "succeeded", task


def fdb_entries(h, dev):
    p = h.ns("bridge", "-j", "fdb", "show", "dev", dev, check=False)
    return json.loads(p.stdout or "[]") if p.returncode == 0 else []


def mac_remote(h, dev, mac):
    return next((e["dst"] for e in fdb_entries(h, dev)
                 if e.get("mac") == mac.lower() and "dst" in e), None)


def link_exists(h, dev):
    return h.ns("ip", "link", "show", dev, check=False).returncode == 0


def net_file(h, net, name):
    path = os.path.join(h.run_dir, "networks", net, name)
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def received(h, vm):
    return [int(x) for x in re.findall(r"got-line-(\d+)", h.console_log(vm))]


def test_tcp_connection_and_ip_survive_a_move(cluster):
    c = cluster(3, driver="qemu", listen=False)
    form(c)
    h1, h2, h3 = c.hosts
    shared_pool(c)
    net = h1.api("POST", "/v1/networks", {"name": "mig", "type": "nat",
                                          "subnet": f"{SUBNET}.0/24"}, expect=201)
    vx = f"vx{net['vni']}"
    for h in (h2, h3):
        wait_until(lambda: (h.request("GET", "/v1/networks/mig")[1] or {}).get("state")
                   == "active", 30, what=f"mig active on {h.name}")
    create_on(h1, "a", ["mig"])
    create_on(h2, "b", ["mig"])
    for h, vm in ((h1, "a"), (h2, "b")):
        h.cli("vm", "start", vm)
    for h, vm in ((h1, "a"), (h2, "b")):
        h.wait_console(vm, BOOT_MARKER, timeout=240)
    ip_a, ip_b = h1.guest_ip("a", timeout=120), h2.guest_ip("b", timeout=120)
    a = h1.vm("a")
    mac_a, tap_a = a["nics"][0]["mac"], a["nics"][0]["tap"]
    assert tap_a and link_exists(h1, tap_a)
    wait_until(lambda: mac_remote(h2, vx, mac_a) == h1.address, 30, what="h2's FDB: a on h1")

    # B serves one connection; each line it gets goes to its console
    # (busybox nc ends at EOF on its stdin: it gets a pipe that never ends).
    h2.guest("b", f"(sleep 100000 | nc -l -p {PORT} | while read -r l; do echo got-$l; done) "
                  "</dev/null >/dev/ttyS0 2>&1 & :")
    # A sends a numbered line every 0.5 s over one connection; a broken
    # connection ends it (nothing reconnects) and says so.
    h1.guest("a", f"(i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.5; done "
                  f"| nc {ip_b} {PORT}; echo nc-$((6*7))-ended) </dev/null >/dev/ttyS0 2>&1 & :")
    try:
        wait_until(lambda: len(received(h2, "b")) >= 6, 90, what="b receiving a's lines")
    except Exception:
        print("a:", h1.console_log("a")[-1500:], "\nb:", h2.console_log("b")[-1500:])
        raise
    before = max(received(h2, "b"))
    h1.guest("a", "echo written-before-the-move > /migrate-check.txt; sync")

    task = migrate(h1, "a", {"to": "h3", "verify_memory": True})
    assert task["result"]["memory_verified"] is True, task
    for h in (h1, h2, h3):
        wait_until(lambda: hosts_of(h, "a") == ["h3"], 30, what=f"a on h3 seen from {h.name}")

    # The connection stays open: the numbers go on, consecutively, well
    # past the move, and the client never saw its connection end.
    wait_until(lambda: max(received(h2, "b")) >= before + 20, 120,
               what="lines from a after the move")
    got = received(h2, "b")
    assert got == list(range(got[0], got[0] + len(got))), got
    assert "nc-42-ended" not in h3.console_log("a")  # (the command line says $((6*7)))
    out = h3.guest("a", "cat /migrate-check.txt")
    assert "written-before-the-move" in out.splitlines(), out

    # A keeps its address: in the guest and in the API (from every host),
    # and it still reaches B, by address and by name.
    assert f"inet {ip_a}/" in h3.guest("a", "ip -4 addr show dev eth0")
    for h in (h1, h2, h3):
        assert h.vm("a")["nics"][0]["ip"] == ip_a, h.name
    addrs = h3.api("GET", "/v1/networks/mig")["addresses"]
    assert {(r["name"], r["ip"], r["host"]) for r in addrs} == {("a", ip_a, "h3"),
                                                                 ("b", ip_b, "h2")}
    out = h3.guest("a", "nslookup b 2>&1; ping -c 2 -W 3 b >/dev/null 2>&1 && echo PING-OK",
                   timeout=90)
    assert ip_b in out and "PING-OK" in out, out

    # The fabric follows: h2's FDB entry for A's MAC points at h3, h3 has A's
    # tap and none for its own VM, h1 holds nothing of A.
    wait_until(lambda: mac_remote(h2, vx, mac_a) == h3.address, 30, what="h2's FDB: a on h3")
    assert link_exists(h3, h3.vm("a")["nics"][0]["tap"])
    assert mac_remote(h3, vx, mac_a) is None
    wait_until(lambda: mac_remote(h1, vx, mac_a) == h3.address, 30, what="h1's FDB: a on h3")
    assert not link_exists(h1, tap_a)
    local = [e for e in json.loads(h1.ns("bridge", "-j", "fdb", "show", "br", "vbr-mig").stdout)
             if e.get("mac") == mac_a.lower() and e.get("ifname") != vx]
    assert local == [], local  # no port of h1's bridge leads to A any more
    wait_until(lambda: mac_a.lower() not in net_file(h1, "mig", "hosts").lower(), 30,
               what="h1's DHCP hosts without a")
    assert mac_a.lower() in net_file(h3, "mig", "hosts").lower()
    wait_until(lambda: mac_a.lower() not in net_file(h1, "mig", "leases").lower(), 30,
               what="h1's dnsmasq forgets a's lease")
    leases1 = [l["mac"].lower() for l in h1.api("GET", "/v1/networks/mig")["leases"]]
    assert mac_a.lower() not in leases1
    # Every host still names A (DNS is the cluster's).
    for h in (h1, h2, h3):
        assert f"{ip_a} a.mig.vireo.internal a" in net_file(h, "mig", "cluster-hosts"), h.name


def disks(h, vm):
    return sorted(h.guest(vm, "ls /sys/block | grep '^vd'").split())


def nics(h, vm):
    return sorted(h.guest(vm, "ls /sys/class/net | grep '^eth'").split())


def cpus(h, vm):
    return h.guest(vm, "cat /sys/devices/system/cpu/online").strip()


def hardware(h, vm):
    return disks(h, vm), nics(h, vm), cpus(h, vm)


def test_hot_plugged_vm_moves_with_its_hardware_and_back(cluster):
    c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    create_on(h1, "hp", ["user"], vcpus=1, max_vcpus=2)
    h1.cli("vm", "start", "hp")
    h1.wait_console("hp", BOOT_MARKER, timeout=240)
    # Hot-plugs: a disk on the shared pool, a NIC, a vCPU.
    h1.task_ok("POST", "/v1/vms/hp/disks", {"size_bytes": 16 << 20, "pool": "nfs"})
    h1.task_ok("POST", "/v1/vms/hp/nics", {"network": "user"})
    h1.cli("vm", "set", "hp", "--vcpus", "2")
    want = (["vda", "vdb"], ["eth0", "eth1"], "0-1")
    wait_until(lambda: hardware(h1, "hp") == want, 90, interval=1, what="the hot-plugs seen")
    h1.guest("hp", "echo before-the-move > /dev/ttyS0; "
                   "echo written-before-the-move > /migrate-check.txt; sync")
    start_counter(h1, "hp")
    tick = max(ticks(h1.console_log("hp")))
    shown = h1.vm("hp")
    assert [d["volume"].split("/")[0] for d in shown["disks"]] == ["nfs", "nfs"], shown

    task = migrate(h1, "hp", {"to": "h2", "verify_memory": True})
    assert task["result"]["memory_verified"] is True, task
    wait_until(lambda: hosts_of(h1, "hp") == ["h2"], 30, what="hp on h2")
    # The guest went on: its counter, then its file (the counter stopped
    # first: its lines would come between the hardware's).
    counter_goes_on(h2, "hp", tick)
    stop_counter(h2, "hp")
    out = h2.guest("hp", "cat /migrate-check.txt")
    assert "written-before-the-move" in out.splitlines(), out
    assert hardware(h2, "hp") == want
    after = h2.vm("hp")
    assert (after["vcpus"], after["vcpus_plugged"]) == (2, 2), after
    assert [d["volume"] for d in after["disks"]] == [d["volume"] for d in shown["disks"]]
    assert [(n["slot"], n["network"], n["mac"]) for n in after["nics"]] == \
        [(n["slot"], n["network"], n["mac"]) for n in shown["nics"]]
    # The console log continued: what was written before is in h2's log,
    # and what the guest writes now follows it.
    h2.guest("hp", "echo after-the-move > /dev/ttyS0")
    log = h2.console_log("hp")
    assert 0 <= log.find("before-the-move") < log.rfind("after-the-move"), log[-2000:]
    assert log.count(BOOT_MARKER) == 1, "booted again?"
    # vireo events on h2 shows the move (the VM's document leaving h1 for h2).
    vm_id = after["id"]
    evs = [json.loads(l) for l in
           h2.cli("events", "--kind", "vm", "--output", "json").stdout.splitlines() if l.strip()]
    mine = [e for e in evs if vm_id in json.dumps(e)]
    assert {"h1", "h2"} <= {e.get("host") for e in mine}, mine[-5:]
    assert mine[-1].get("host") == "h2", mine[-5:]

    # And back.
    task = migrate(h2, "hp", {"to": "h1", "verify_memory": True})
    assert task["result"]["memory_verified"] is True, task
    wait_until(lambda: hosts_of(h2, "hp") == ["h1"], 30, what="hp back on h1")
    assert hardware(h1, "hp") == want
    assert h1.vm("hp")["state"] == "running"
    h1.cli("vm", "stop", "hp", "--force")
