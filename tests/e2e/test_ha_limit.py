"""HA's restart limit is the cluster's setting (docs/ha.md, "The restart
limit"), on four fake-driver hosts (no guest, no QEMU).

Before the cluster forms, the first host (standalone) sets a window of 7
minutes and another host a limit of 9: cluster init carries the first's
into the cluster, the joiner takes the cluster's. Then the limit is set to
1 restart (bad values first: 400 naming the field), from one host, and
every host shows it. The manager's host and a third host, z, are in
maintenance, so the HA VMs of the victim (the one etcd client; the voters
keep a quorum through the second kill) all land on x. once1's first HA start there
fails (the fake driver's start@NAME fault): with the limit of 1 that start
was its one restart, so it is left crashed at once, the reason naming the
numbers (the default, 3, retries it after 2 s and it runs). lim1 runs on
x (one HA start counted); then x dies too: the manager holds lim1 back,
left where it was, its ha_state and the manager's "ha" task naming the
numbers. z leaves maintenance: lim1 is still held (the limit, not the
room). The limit raised to 2 through the API (no restart of anything): the
manager's next rounds restart lim1 on z.

Its check of lim1's ha_state reads the VM of a down host through the full
view, which shows HA's fields since main's c0db572."""

import time

from test_drs import error_of
from test_ha_retry import ha_messages
from test_migrate import create_on, form, hosts_of, shared_pool
from vireo_harness import wait_until

HELD = "restart limit: restarted 1 time (at most 1 HA restart within 7 minutes)"
FAILED = "restart limit: its HA start failed 1 time (at most 1 HA restart within 7 minutes)"


def formed_with_settings(cluster, tmp_path, monkeypatch):
    """Four fake-driver hosts (daemon fault points in the returned
    directory), the first's window of 7 minutes set while standalone, and
    the second's 9 restarts, then formed, with a shared pool: (cluster,
    faults, manager, the other hosts)."""
    faults = tmp_path / "faults"
    faults.mkdir()
    monkeypatch.setenv("VIREO_FAKE_FAULTS", str(faults))
    c = cluster(4, driver="fake", listen=False)
    first, joiner = c.hosts[0], c.hosts[1]
    assert first.api("PATCH", "/v1/cluster/ha", {"window_minutes": 7}) == {
        "max_restarts": 3, "window_minutes": 7}
    joiner.api("PATCH", "/v1/cluster/ha", {"max_restarts": 9})
    form(c)
    shared_pool(c)
    name = first.api("GET", "/v1/cluster")["manager"]
    manager = next(h for h in c.hosts if h.name == name)
    return c, faults, manager, [h for h in c.hosts if h is not manager]


def set_limit_checked(c, h):
    """The window the first host brought, the refusals of bad values, then
    1 restart set through h's CLI and seen by every host."""
    for other in c.hosts:
        assert other.api("GET", "/v1/cluster/ha") == {"max_restarts": 3,
                                                      "window_minutes": 7}, other.name
    for body, named in (({"max_restarts": 0}, "max_restarts:"),
                        ({"max_restarts": 101}, "max_restarts:"),
                        ({"max_restarts": "2"}, "max_restarts:"),
                        ({"window_minutes": 0}, "window_minutes:"),
                        ({"window_minutes": 10081}, "window_minutes:"),
                        ({"tries": 1}, "tries: unknown field"),
                        ({}, "at least one")):
        assert named in error_of(h, "PATCH", "/v1/cluster/ha", body, 400), body
    bad = h.cli("cluster", "ha", "set", "--max-restarts", "0", check=False)
    assert bad.returncode != 0 and "--max-restarts" in bad.stderr, bad.stderr
    out = h.cli("cluster", "ha", "set", "--max-restarts", "1").stdout
    assert "at most 1 per VM" in out and "7 minutes" in out, out
    for other in c.hosts:
        assert other.cli_json("cluster", "ha", "show") == {"max_restarts": 1,
                                                          "window_minutes": 7}, other.name


def test_a_limit_of_one_holds_a_vm_back_after_one_restart(cluster, tmp_path, monkeypatch):
    c, faults, manager, others = formed_with_settings(cluster, tmp_path, monkeypatch)
    client = c.hosts[3]  # the first three run etcd's voting members
    assert client is not manager, "the manager is the host that formed the cluster"
    victim = client
    x, z = [h for h in others if h is not client]
    set_limit_checked(c, x)
    for name in ("lim1", "once1"):
        create_on(victim, name, blank=True, disk_size_bytes=16 << 20, ha=True)
        victim.task_ok("POST", f"/v1/vms/{name}/start")
    for h in (manager, z):
        h.task_ok("POST", f"/v1/hosts/{h.name}/maintenance", {"on": True})
    (faults / "start@once1").write_text("1 EIO\n")
    c.kill_host(victim)

    def vm_on(h, name):
        return next((v for v in h.api("GET", "/v1/vms")["vms"] if v["name"] == name), {})

    def runs_on(h, name):
        v = vm_on(h, name)  # one read: two could see the dead host, then the new one
        return v.get("state") == "running" and v.get("host") == h.name

    wait_until(lambda: runs_on(x, "lim1"), 90, what="lim1 restarted on x")
    assert len(x.vm("lim1").get("ha_restarts") or []) == 1, x.vm("lim1")
    # once1's one HA start failed: no retry, crashed with the limit's reason.
    wait_until(lambda: vm_on(x, "once1").get("host") == x.name
               and "restart limit" in (vm_on(x, "once1").get("exit_reason") or ""), 90,
               what="once1 given up after its one failed HA start")
    once1 = vm_on(x, "once1")
    assert once1["state"] == "crashed" and FAILED in once1["exit_reason"], once1
    assert any(m.startswith(f"vm once1: {FAILED}") for m in ha_messages([x])), ha_messages([x])
    assert len(x.vm("once1").get("ha_restarts") or []) == 1, x.vm("once1")

    # x dies with lim1: restarted once already, it is held back.
    c.kill_host(x)
    wait_until(lambda: any(m.startswith(f"vm lim1: {HELD}; left where it was (host {x.name}")
                           for m in ha_messages([manager])), 90,
               what="the manager holding lim1 back")
    # Its ha_state too, in its document on x, read from it (x is down).
    wait_until(lambda: HELD in (vm_on(manager, "lim1").get("ha_state") or ""), 30,
               what="lim1's ha_state naming the limit")
    assert HELD in manager.vm("lim1")["ha_state"]
    assert hosts_of(manager, "lim1") == [x.name]
    # Room on z changes nothing: the limit holds it.
    z.api("POST", f"/v1/hosts/{z.name}/maintenance", {"on": False})
    time.sleep(3)  # a dozen manager rounds (250 ms each)
    assert hosts_of(manager, "lim1") == [x.name]
    # Raised to 2 (the API, on z): the manager's next rounds restart it.
    assert z.api("PATCH", "/v1/cluster/ha", {"max_restarts": 2}) == {"max_restarts": 2,
                                                                     "window_minutes": 7}
    wait_until(lambda: runs_on(z, "lim1"), 90,
               what="lim1 restarted on z once the limit was raised")
    assert len(z.vm("lim1").get("ha_restarts") or []) == 2, z.vm("lim1")
