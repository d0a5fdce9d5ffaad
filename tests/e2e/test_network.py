"""System tests of virtual networks: real bridges, taps, nftables and
dnsmasq made by vireod inside the test's own network namespaces, with real
guests getting DHCP addresses and talking to each other and the outside."""

import json
import os
import signal
import subprocess
import time

import pytest

from vireo_harness import Daemon, Netns, pid_alive, wait_until


def ping_from_guest(daemon, vm, ip, count=2):
    out = daemon.guest(vm, f"ping -c {count} -W 2 {ip} 2>&1 && echo PING-OK || echo PING-FAIL",
                       timeout=60)
    print(f"ping {ip} from {vm}:{out}")  # shown when the test fails
    return "PING-OK" in out


def test_default_network_gives_dhcp_address_and_host_reaches_it(daemon):
    net = daemon.api("GET", "/v1/networks/default")
    assert net["type"] == "nat" and net["state"] == "active" and net["dnsmasq_pid"]
    daemon.create_and_boot("web", memory="128M")
    ip = daemon.guest_ip("web")
    assert ip.startswith(net["subnet"].rsplit(".", 1)[0] + ".")
    assert ip in daemon.cli("vm", "show", "web").stdout
    # The host side (the daemon's namespace) reaches the VM.
    assert daemon.ns("busybox", "ping", "-c", "2", "-W", "2", ip, check=False).returncode == 0
    # The lease is reported on the network too.
    leases = daemon.api("GET", "/v1/networks/default")["leases"]
    assert ip in [l["ip"] for l in leases]


def test_two_vms_reach_each_other_by_ip_and_name(daemon):
    # Both boot at once, so both leases come at about the same time: the case
    # where a guest used its network as soon as vireod showed its lease, before
    # its DHCP client had applied it ("sendto: Network is unreachable").
    for vm in ("alpha", "beta"):
        daemon.cli("vm", "create", vm, "--memory", "128M")
    for vm in ("alpha", "beta"):
        daemon.cli("vm", "start", vm)
    from vireo_harness import BOOT_MARKER
    for vm in ("alpha", "beta"):
        daemon.wait_console(vm, BOOT_MARKER)
    daemon.remember_qemu_pids()
    # Each guest has applied its lease (vireod shows it a moment before).
    ip_a, ip_b = daemon.guest_ip("alpha"), daemon.guest_ip("beta")
    assert ping_from_guest(daemon, "alpha", ip_b)
    # DNS: dnsmasq knows each VM by its name.
    out = daemon.guest("alpha", "nslookup beta 2>&1")
    assert ip_b in out, out
    assert ping_from_guest(daemon, "beta", ip_a)


def test_vms_on_two_isolated_networks_cannot_reach_each_other(daemon):
    daemon.api("POST", "/v1/networks", {"name": "iso-a", "type": "isolated",
                                        "subnet": "10.201.1.0/24"}, expect=201)
    daemon.api("POST", "/v1/networks", {"name": "iso-b", "type": "isolated",
                                        "subnet": "10.201.2.0/24"}, expect=201)
    for vm, net in (("va", "iso-a"), ("vb", "iso-b")):
        daemon.task_ok("POST", "/v1/vms", {"name": vm, "memory_mib": 128, "networks": [net]})
        daemon.cli("vm", "start", vm)
    from vireo_harness import BOOT_MARKER
    for vm in ("va", "vb"):
        daemon.wait_console(vm, BOOT_MARKER)
    ip_a, ip_b = daemon.guest_ip("va"), daemon.guest_ip("vb")
    assert ip_a.startswith("10.201.1.") and ip_b.startswith("10.201.2.")
    assert ping_from_guest(daemon, "va", "10.201.1.1")       # its own gateway: yes
    assert not ping_from_guest(daemon, "va", ip_b, count=1)  # the other segment: no
    assert not ping_from_guest(daemon, "vb", ip_a, count=1)
    daemon.remember_qemu_pids()


@pytest.fixture
def outside(daemon):
    """A namespace "outside" the host, joined to the daemon's by a veth pair,
    with a TCP server that answers each client with the address it sees."""
    out = Netns()
    veth_host, veth_out = "vo" + out.name[-8:], "vi" + out.name[-8:]
    try:
        subprocess.run(["ip", "link", "add", veth_host, "netns", daemon.netns.name, "type", "veth",
                        "peer", "name", veth_out, "netns", out.name], check=True)
        daemon.ns("ip", "addr", "add", "198.51.100.1/24", "dev", veth_host)
        daemon.ns("ip", "link", "set", veth_host, "up")
        subprocess.run(["ip", "-n", out.name, "addr", "add", "198.51.100.2/24", "dev", veth_out],
                       check=True)
        subprocess.run(["ip", "-n", out.name, "link", "set", veth_out, "up"], check=True)
        server = subprocess.Popen(
            ["ip", "netns", "exec", out.name, "/usr/bin/python3", "-c",
             "import socket\n"
             "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
             "s.bind(('198.51.100.2', 8080)); s.listen(4); s.settimeout(120)\n"
             "for _ in range(4):\n"
             "    c, a = s.accept(); c.sendall(('PEER=%s\\n' % a[0]).encode()); c.close()\n"])
        yield out
    finally:
        if "server" in locals():
            server.kill()
            server.wait(timeout=10)
        out.delete()


def test_nat_network_reaches_outside_through_masquerade(daemon, outside):
    daemon.create_and_boot("natvm", memory="128M")
    vm_ip = daemon.guest_ip("natvm")
    out = daemon.guest("natvm", "nc -w 5 198.51.100.2 8080 </dev/null")
    # The server saw the host's address on that link, not the VM's.
    assert "PEER=198.51.100.1" in out, out
    assert vm_ip not in out


def test_restart_leaves_exactly_one_set_of_plumbing(daemon):
    daemon.api("POST", "/v1/networks", {"name": "extra", "type": "isolated"}, expect=201)
    before_links, before_rules = daemon.host_state()
    dnsmasqs = {n["name"]: n["dnsmasq_pid"] for n in daemon.api("GET", "/v1/networks")["networks"]}
    daemon.kill9()
    assert all(pid_alive(pid) for pid in dnsmasqs.values())
    daemon.start()
    after_links, after_rules = daemon.host_state()
    assert after_links == before_links
    assert after_rules == before_rules
    now = {n["name"]: n["dnsmasq_pid"] for n in daemon.api("GET", "/v1/networks")["networks"]}
    assert now == dnsmasqs  # re-adopted, not started twice
    # A graceful restart too.
    daemon.stop()
    daemon.start()
    assert daemon.host_state() == (before_links, before_rules)


def test_deleting_every_network_restores_the_namespace(daemon):
    daemon.api("POST", "/v1/networks", {"name": "tmp-nat", "type": "nat"}, expect=201)
    daemon.api("POST", "/v1/networks", {"name": "tmp-vx", "type": "vxlan", "vni": 4242,
                                        "remotes": ["127.0.0.2"]}, expect=201)
    daemon.cli("vm", "create", "user-of-default", "--memory", "128M")
    status, doc = daemon.request("DELETE", "/v1/networks/default")
    assert status == 409 and "user-of-default" in doc["error"]["message"]
    daemon.cli("vm", "delete", "user-of-default")
    pids = [n["dnsmasq_pid"] for n in daemon.api("GET", "/v1/networks")["networks"]
            if n["dnsmasq_pid"]]
    for net in daemon.api("GET", "/v1/networks")["networks"]:
        daemon.api("DELETE", f"/v1/networks/{net['name']}")
    assert daemon.api("GET", "/v1/networks")["networks"] == []
    assert daemon.host_state() == daemon.baseline
    wait_until(lambda: not any(pid_alive(p) for p in pids), 10, what="dnsmasq to exit")
    assert not os.listdir(os.path.join(daemon.run_dir, "networks"))


def test_bad_network_input_leaves_nothing(daemon):
    before = daemon.host_state()
    bad = [
        ({"name": "x1", "type": "nat", "subnet": "10.100.0.0/24"}, 409),   # overlaps default
        ({"name": "x2", "type": "nat", "subnet": "10.1.2.3/24"}, 400),     # host bits
        ({"name": "x3", "type": "nat", "subnet": "300.1.2.0/24"}, 400),
        ({"name": "x4", "type": "bridge", "bridge": "nosuchbr0"}, 400),
        ({"name": "x5", "type": "vxlan", "vni": 0, "remotes": ["127.0.0.2"]}, 400),
        ({"name": "x6", "type": "vxlan", "vni": 16777216, "remotes": ["127.0.0.2"]}, 400),
        ({"name": "x7", "type": "vlan", "uplink": "lo", "vlan_id": 10}, None),  # no 8021q here
        ({"name": "Bad", "type": "nat"}, 400),
        ({"name": "default", "type": "nat"}, 409),
        ({"name": "x8", "type": "nat", "vni": 5}, 400),
    ]
    for body, want in bad:
        status, doc = daemon.request("POST", "/v1/networks", body)
        if want is None:  # vlan: a clear refusal where the kernel lacks 802.1Q
            if status == 201:
                daemon.api("DELETE", "/v1/networks/x7")
                continue
            assert "8021q" in doc["error"]["message"], doc
        else:
            assert status == want, (body, status, doc)
        assert set(doc["error"]) == {"code", "message"}
    assert daemon.host_state() == before
    names = [n["name"] for n in daemon.api("GET", "/v1/networks")["networks"]]
    assert names == ["default"]


def test_vxlan_joins_vms_on_two_hosts(tmp_path):
    """Two vireods in two namespaces joined by a veth; a vxlan network on each
    (DHCP served by host A's) makes one L2 segment for a VM on each."""
    a, b = Daemon(), Daemon()
    try:
        veth_a, veth_b = "xa" + a.netns.name[-8:], "xb" + a.netns.name[-8:]
        subprocess.run(["ip", "link", "add", veth_a, "netns", a.netns.name, "type", "veth",
                        "peer", "name", veth_b, "netns", b.netns.name], check=True)
        a.ns("ip", "addr", "add", "192.0.2.1/24", "dev", veth_a)
        a.ns("ip", "link", "set", veth_a, "up")
        b.ns("ip", "addr", "add", "192.0.2.2/24", "dev", veth_b)
        b.ns("ip", "link", "set", veth_b, "up")
        a.api("POST", "/v1/networks", {"name": "overlay", "type": "vxlan", "vni": 42,
                                       "remotes": ["192.0.2.2"], "local": "192.0.2.1",
                                       "subnet": "10.222.0.0/24"}, expect=201)
        b.api("POST", "/v1/networks", {"name": "overlay", "type": "vxlan", "vni": 42,
                                       "remotes": ["192.0.2.1"], "local": "192.0.2.2"},
              expect=201)
        from vireo_harness import BOOT_MARKER
        for d, vm in ((a, "left"), (b, "right")):
            d.task_ok("POST", "/v1/vms", {"name": vm, "memory_mib": 128, "networks": ["overlay"]})
            d.cli("vm", "start", vm)
        for d, vm in ((a, "left"), (b, "right")):
            d.wait_console(vm, BOOT_MARKER)
            d.remember_qemu_pids()
        ip_left = a.guest_ip("left")
        # right's address came from host A's dnsmasq, across the overlay.
        right_ip = wait_until(lambda: next((l["ip"] for l in a.api("GET", "/v1/networks/overlay")
                                            ["leases"] if l["ip"] != ip_left), None),
                              60, what="a lease for the VM on host B")
        assert right_ip.startswith("10.222.0.")
        b.wait_guest_addr("right", right_ip)
        assert ping_from_guest(b, "right", ip_left)
        assert ping_from_guest(a, "left", right_ip)
    finally:
        a.cleanup()
        b.cleanup()


def test_dead_dnsmasq_is_restarted(daemon):
    old = daemon.api("GET", "/v1/networks/default")["dnsmasq_pid"]
    os.kill(old, signal.SIGKILL)
    new = wait_until(lambda: (lambda p: p if p and p != old else None)(
        daemon.api("GET", "/v1/networks/default")["dnsmasq_pid"]), 10, what="a new dnsmasq")
    assert pid_alive(new)
    # And it serves: a VM still gets its address.
    daemon.create_and_boot("after", memory="128M")
    assert daemon.nic_ip("after")
