"""System tests of the hosts service on one host (a cluster of one):
the host's record (GET /v1/hosts, `vireo host list|show`), the manager
role, and that the record goes with vireod and comes back with it. The
multi-host behaviour (offline within the lease's TTL, manager takeover) is
tested with the cluster harness."""

import json
import re
import subprocess

from vireo_harness import wait_until


def hosts(d):
    return d.api("GET", "/v1/hosts")["hosts"]


def test_standalone_host_is_online_manager(fake_daemon):
    d = fake_daemon
    wait_until(lambda: any(h.get("manager") for h in hosts(d)), 15, what="a manager")
    [h] = hosts(d)
    me = d.api("GET", "/v1/host")
    assert h["id"] == me["id"] and h["name"] == me["name"]
    assert h["state"] == "online" and h["local"] is True and h["manager"] is True
    assert h["accel"] == "tcg"  # fake driver: no KVM
    assert h["cpus"] >= 1 and h["memory_mib"] > 0 and h["cpu_flags"]
    assert "default" in h["pools"]
    # The hypervisor's version, in the record and GET /v1/host (the fake
    # driver says QEMU 10.0.2's).
    assert h["qemu_version"] == me["qemu_version"] == "10.0.2"

    # A VM holds its place on the host (memory and vCPUs) once the record
    # is refreshed.
    d.task_ok("POST", "/v1/vms", {"name": "a", "vcpus": 2, "memory_mib": 512})
    wait_until(lambda: hosts(d)[0]["committed_memory_mib"] == 512, 20,
               what="the VM in the host record")
    assert hosts(d)[0]["committed_vcpus"] == 2 and hosts(d)[0]["vms"] == 1

    # By name and by id; an unknown host is a 404 that names it.
    assert d.api("GET", f"/v1/hosts/{h['name']}")["id"] == h["id"]
    assert d.api("GET", f"/v1/hosts/{h['id']}")["name"] == h["name"]
    err = d.api("GET", "/v1/hosts/nope", expect=404)
    assert err["error"]["code"] == "not-found" and "nope" in err["error"]["message"]

    # The CLI.
    out = d.cli("host", "list").stdout
    assert h["name"] in out and "online" in out and "manager" in out
    assert re.search(r"^\S+\s+online\s.*\s10\.0\.2\s", out, re.M), out
    assert re.search(r"^qemu version:\s+10\.0\.2$", d.cli("host", "show").stdout, re.M)
    shown = json.loads(d.cli("--output", "json", "host", "show", h["name"]).stdout)
    assert shown["id"] == h["id"]
    shown = d.cli("host", "show", h["name"]).stdout
    assert "committed memory:" in shown
    assert re.search(r"^qemu version:\s+10\.0\.2$", shown, re.M), shown
    bad = d.cli("host", "show", "nope", check=False)
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_qemu_version_is_the_binarys(daemon):
    """The QEMU driver publishes what `qemu-system-x86_64 --version` says."""
    first = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                           text=True, check=True).stdout.splitlines()[0]
    want = re.match(r"QEMU emulator version ([0-9.]+)", first).group(1)
    assert daemon.api("GET", "/v1/host")["qemu_version"] == want
    wait_until(lambda: hosts(daemon)[0].get("qemu_version") == want, 20,
               what="the version in the host record")


def test_record_goes_with_vireod_and_comes_back(fake_daemon):
    d = fake_daemon
    wait_until(lambda: hosts(d) and hosts(d)[0]["state"] == "online", 15, what="online")
    # A clean stop revokes the lease: the record and the manager key go
    # at once, the member document stays (the host is known, offline).
    d.stop()
    d.start()
    [h] = hosts(d)
    # Right after the start the record may not be back yet; it comes back.
    wait_until(lambda: hosts(d)[0]["state"] == "online" and hosts(d)[0]["manager"], 15,
               what="online again")

    # Killed: the lease of the dead vireod expires by itself; the new one
    # publishes under its own lease and becomes the manager again.
    d.kill9()
    d.start()
    wait_until(lambda: hosts(d)[0]["state"] == "online" and hosts(d)[0]["manager"], 20,
               what="online after a crash")
    assert len(hosts(d)) == 1
