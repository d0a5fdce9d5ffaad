"""Cluster networks on a formed cluster of the multi-host harness: a nat
network created on one host exists on every host (bridge, VXLAN device with
one FDB entry per other host), guests on two hosts reach each other by IP
and by name over the VXLAN segment, each with its address from its own
host's dnsmasq (IPAM in the store), the FDB follows hosts that join, and a
delete is refused while a VM on another host uses the network."""

import json
import os
import signal
import subprocess

import pytest

from vireo_harness import BOOT_MARKER, stop_process, wait_until


def init(h):
    h.cli_json("cluster", "init", "--address", h.address)
    h.use_cluster_certs()


def join(h, via):
    tok = via.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
    h.cli_json("cluster", "join", f"{via.address}:{via.port}", "--token", tok["token"],
               "--address", h.address)
    h.use_cluster_certs()


def fdb_remotes(h, dev):
    p = h.ns("bridge", "-j", "fdb", "show", "dev", dev, check=False)
    if p.returncode != 0:
        return None  # no such device (yet)
    out = p.stdout
    return sorted(e["dst"] for e in json.loads(out or "[]")
                  if e.get("mac") == "00:00:00:00:00:00" and "dst" in e)


def mac_remote(h, dev, mac):
    """The remote of dev's FDB entry for mac, or None."""
    p = h.ns("bridge", "-j", "fdb", "show", "dev", dev, check=False)
    entries = json.loads(p.stdout or "[]") if p.returncode == 0 else []
    return next((e["dst"] for e in entries if e.get("mac") == mac.lower() and "dst" in e), None)


def link_exists(h, dev):
    return h.ns("ip", "link", "show", dev, check=False).returncode == 0


def network_on(h, name):
    st, doc = h.request("GET", f"/v1/networks/{name}")
    return doc if st == 200 else None


def ipam(h, name):
    """The cluster's addresses (IPAM records) of network name, as any host
    shows them."""
    return network_on(h, name)["addresses"]


def ping_from_guest(h, vm, target, count=2):
    out = h.guest(vm, f"ping -c {count} -W 2 {target} 2>&1 && echo PING-OK || echo PING-FAIL",
                  timeout=60)
    print(f"{h.name}: ping {target} from {vm}: {out}")
    return "PING-OK" in out


def test_cluster_nat_network_spans_hosts(cluster):
    c = cluster(2, driver="qemu", listen=False)
    h1, h2 = c.hosts
    # Standalone, "cluster" is refused.
    st, err = h1.request("POST", "/v1/networks", {"name": "x", "type": "nat", "cluster": True})
    assert st == 400 and "not in a cluster" in err["error"]["message"], err
    init(h1)
    join(h2, h1)
    # Created on h1: h1 has it at once, h2 follows (its own document,
    # bridge, VXLAN device towards h1).
    net = h1.api("POST", "/v1/networks", {"name": "web", "type": "nat",
                                          "subnet": "10.88.0.0/24"}, expect=201)
    assert net["cluster"] is True and net["vni"] >= 8388608
    vx = f"vx{net['vni']}"
    wait_until(lambda: (network_on(h2, "web") or {}).get("state") == "active", 30,
               what="web active on h2")
    n2 = network_on(h2, "web")
    assert (n2["vni"], n2["subnet"], n2["bridge"]) == (net["vni"], "10.88.0.0/24", "vbr-web")
    assert fdb_remotes(h1, vx) == [h2.address]
    wait_until(lambda: link_exists(h2, vx) and fdb_remotes(h2, vx) == [h1.address], 20,
               what="h2's FDB towards h1")
    # The same anycast gateway on both bridges.
    mac = lambda h: json.loads(h.ns("ip", "-j", "link", "show", "vbr-web").stdout)[0]["address"]
    assert mac(h1) == mac(h2)
    # ... kept each host's own by the bridge rules on the VXLAN port.
    for h in (h1, h2):
        rules = h.ns("nft", "list", "table", "bridge", "vireo-web").stdout
        assert f'oifname "{vx}" ether saddr {mac(h)} drop' in rules, rules
        assert f'oifname "{vx}" arp daddr ip 10.88.0.1 drop' in rules, rules
    # The cluster picks the VNI.
    st, err = h2.request("POST", "/v1/networks", {"name": "y", "type": "nat", "vni": 9000000})
    assert st == 400 and "vni" in err["error"]["message"], err
    # Names are the cluster's: a second "web" on h2 is refused.
    st, err = h2.request("POST", "/v1/networks", {"name": "web", "type": "isolated"})
    assert st == 409, err
    # A VM on each host (each created through its own host's socket, pinned
    # there: a create without "host" is placed by the manager).
    for h, vm in ((h1, "a"), (h2, "b")):
        h.task_ok("POST", "/v1/vms", {"name": vm, "memory_mib": 128, "networks": ["web"],
                                      "host": h.name})
        h.cli("vm", "start", vm)
    for h, vm in ((h1, "a"), (h2, "b")):
        h.wait_console(vm, BOOT_MARKER, timeout=120)
        h.remember_qemu_pids()
    ip_a, ip_b = h1.guest_ip("a", timeout=90), h2.guest_ip("b", timeout=90)
    assert ip_a != ip_b and ip_a.startswith("10.88.0.") and ip_b.startswith("10.88.0.")
    # IPAM: one address per VM, the same seen from either host.
    want = sorted([{"ip": ip_a, "name": "a", "host": "h1"}, {"ip": ip_b, "name": "b", "host": "h2"}],
                  key=lambda r: r["ip"])
    for h in (h1, h2):
        got = [{k: r[k] for k in ("ip", "name", "host")} for r in ipam(h, "web")]
        assert sorted(got, key=lambda r: r["ip"]) == want
    # Unicast to a VM goes to its host only: a per-MAC FDB entry each way.
    macs = {r["name"]: r["mac"] for r in ipam(h1, "web")}
    wait_until(lambda: mac_remote(h1, vx, macs["b"]) == h2.address and
               mac_remote(h2, vx, macs["a"]) == h1.address, 20, what="per-MAC FDB entries")
    assert mac_remote(h1, vx, macs["a"]) is None  # its own VM: learnt on the bridge
    shown = h2.cli("network", "show", "web").stdout
    assert "2 (the cluster's)" in shown and ip_a in shown and "h1" in shown, shown
    # Each address came from the VM's own host: its lease is in that host's
    # lease file only.
    lease_ips = lambda h: [l["ip"] for l in network_on(h, "web")["leases"]]
    assert ip_a in lease_ips(h1) and ip_a not in lease_ips(h2)
    assert ip_b in lease_ips(h2) and ip_b not in lease_ips(h1)
    # Across the VXLAN segment, by address and by name (h1's dnsmasq knows
    # b from the store, b runs on h2).
    assert ping_from_guest(h1, "a", ip_b)
    assert ping_from_guest(h2, "b", ip_a)
    out = h1.guest("a", "nslookup b 2>&1")
    assert ip_b in out, out
    assert ping_from_guest(h1, "a", "b")
    # Each VM's gateway is its own host's.
    assert ping_from_guest(h2, "b", "10.88.0.1")
    # a goes; a delete from h1 is then refused while b on h2 uses the
    # network, naming both, and leaves it on every host.
    h1.cli("vm", "stop", "a", "--force")
    h1.task_ok("DELETE", "/v1/vms/a")
    wait_until(lambda: ip_a not in [r["ip"] for r in ipam(h1, "web")], 20,
               what="a's address freed")
    assert [(r["name"], r["ip"]) for r in ipam(h2, "web")] == [("b", ip_b)]
    wait_until(lambda: mac_remote(h2, vx, macs["a"]) is None, 20, what="a's FDB entry gone")
    st, err = h1.request("DELETE", "/v1/networks/web")
    assert st == 409, err
    assert "'b'" in err["error"]["message"] and "h2" in err["error"]["message"]
    assert network_on(h2, "web") and network_on(h1, "web")
    # A third host joins: it gets the network, and every FDB gains it.
    h3 = c.add_host(driver="qemu")
    join(h3, h2)
    wait_until(lambda: (network_on(h3, "web") or {}).get("state") == "active", 30,
               what="web active on h3")
    wait_until(lambda: fdb_remotes(h3, vx) == sorted([h1.address, h2.address]), 20,
               what="h3's FDB")
    for h, others in ((h1, [h2, h3]), (h2, [h1, h3])):
        wait_until(lambda: fdb_remotes(h, vx) == sorted(o.address for o in others), 20,
                   what=f"{h.name}'s FDB with h3")
    # b goes; then the delete works and every host takes its copy down.
    h2.cli("vm", "stop", "b", "--force")
    h2.task_ok("DELETE", "/v1/vms/b")
    wait_until(lambda: ipam(h2, "web") == [], 20, what="b's address freed")
    st, doc = h2.request("DELETE", "/v1/networks/web")
    assert st == 200, doc
    for h in (h1, h2, h3):
        wait_until(lambda: network_on(h, "web") is None and not link_exists(h, vx)
                   and not link_exists(h, "vbr-web"), 30, what=f"web gone on {h.name}")
        assert h.ns("nft", "list", "table", "bridge", "vireo-web", check=False).returncode != 0


def vm_with_nic(h, name, network):
    """(status, error or None): a VM with a NIC on network created on h."""
    st, doc = h.request("POST", "/v1/vms", {"name": name, "memory_mib": 64,
                                            "networks": [network]})
    if st != 202:
        return st, doc
    task = h.wait_task(doc["task"])
    return (202, None) if task["state"] == "succeeded" else (409, task)


def test_cluster_network_rename_full_and_delete_without_quorum(cluster):
    """A renamed VM's address record (DNS) follows its name; a full subnet
    answers 409; a delete while the cluster has no quorum answers 503 and
    leaves the network usable on every host (NICs can be added again once
    the quorum is back), and then works."""
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    init(h1)
    join(h2, h1)
    # A /29: four addresses (.2 to .5) for VMs.
    h1.api("POST", "/v1/networks", {"name": "tiny", "type": "nat", "subnet": "10.89.0.0/29"},
           expect=201)
    wait_until(lambda: (network_on(h2, "tiny") or {}).get("state") == "active", 30,
               what="tiny active on h2")
    assert vm_with_nic(h2, "a", "tiny") == (202, None)
    wait_until(lambda: [r["name"] for r in ipam(h1, "tiny")] == ["a"], 20, what="a's record")
    # Renamed (stopped): its record, and so every host's DNS, follows.
    st, doc = h2.request("PATCH", "/v1/vms/a", {"name": "a2"})
    assert st in (200, 202), doc
    if st == 202:
        assert h2.wait_task(doc["task"])["state"] == "succeeded"
    wait_until(lambda: [r["name"] for r in ipam(h1, "tiny")] == ["a2"], 30,
               what="a's record renamed a2")
    ip = ipam(h1, "tiny")[0]["ip"]
    hosts_file = os.path.join(h1.run_dir, "networks", "tiny", "cluster-hosts")

    def names_a2():
        with open(hosts_file) as f:
            text = f.read()
        return ip in text and "a2" in text.split() and "a" not in text.split()
    wait_until(names_a2, 20, what="h1's DNS names a2")
    # Full: the next NIC is refused, 409, saying why.
    for vm in ("b", "c", "d"):
        assert vm_with_nic(h2, vm, "tiny") == (202, None)
    st, err = vm_with_nic(h1, "e", "tiny")
    assert st == 409 and "no free address" in json.dumps(err), (st, err)
    # No quorum (h2's etcd stopped): the delete answers 503; the network
    # stays on both hosts, not marked deleting in the cluster.
    etcd2 = h2.etcd_pid()
    assert etcd2
    h1.cli("vm", "delete", "e", check=False)
    for vm in ("a2", "b", "c", "d"):
        h2.task_ok("DELETE", f"/v1/vms/{vm}")
    wait_until(lambda: ipam(h1, "tiny") == [], 20, what="the addresses freed")
    stop_process(etcd2)  # every thread: a running one would answer
    try:
        st, doc, _ = h1._request_once("DELETE", "/v1/networks/tiny", None, None, None, 60)
        assert st == 503, (st, doc)
    finally:
        os.kill(etcd2, signal.SIGCONT)
    wait_until(lambda: h1.request("GET", "/v1/cluster")[1].get("quorum"), 30,
               what="quorum back")
    # A manager confirms its lease again (until then creates answer 503 "ask
    # again": no host may place on a lease it cannot confirm).
    wait_until(lambda: any(h.api("GET", "/v1/host")["manager"] for h in (h1, h2)), 30,
               what="a confirmed manager")
    for h in (h1, h2):
        assert (network_on(h, "tiny") or {}).get("state") == "active", h.name
    # Usable again: a NIC on it from either host.
    assert vm_with_nic(h2, "f", "tiny") == (202, None)
    h2.task_ok("DELETE", "/v1/vms/f")
    wait_until(lambda: ipam(h1, "tiny") == [], 20, what="f's address freed")
    st, doc = h1.request("DELETE", "/v1/networks/tiny")
    assert st == 200, doc
    for h in (h1, h2):
        wait_until(lambda: network_on(h, "tiny") is None, 30, what=f"tiny gone on {h.name}")
