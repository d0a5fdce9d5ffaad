"""Where a VM would migrate when no target is named (issue 12): POST
/v1/vms/{vm}/migrate-target on a cluster of three hosts (fake driver),
formed with vireo cluster init/join. The manager picks with the placement
rules: never the VM's own host, the least loaded of the others, a spread
group's free host even when it is busier, a together group that lives on
the VM's own host gives no target (409 naming each host's reason), and so
does a VM too big for the other hosts; a migration's --pool (where its
local disks go) picks a host with that pool. Asked of any host (the request
goes to the VM's host, which asks the manager when it is not the manager
itself). Each host publishes its machine types for the migration checks.
With a manager of an older vireod (VIREO_OLD_VIREOD; skipped without it),
which knows no "pool", a migration's --pool still finds a target."""

import pytest

from test_cluster_placement import by_name, form, hosts, manager
from test_cluster_join_versions import OLD, restart_as
from vireo_harness import wait_until


def target(via, vm, expect=200, **body):
    return via.api("POST", f"/v1/vms/{vm}/migrate-target", body, expect=expect)


def create_on(c, host, name, memory_mib, group=None):
    body = {"name": name, "memory_mib": memory_mib, "host": host.name}
    if group:
        body["group"] = group
    doc = host.api("POST", "/v1/vms", body, expect=202)
    assert doc["host"]["name"] == host.name
    task = host.wait_task(doc["task"])
    assert task["state"] == "succeeded", task


def verdicts(doc):
    return {h["name"]: (h["fits"], h.get("reason")) for h in doc["hosts"]}


def test_migrate_target(cluster, tmp_path):
    c = cluster(3, driver="fake", listen=False)
    form(c)
    m = by_name(c, manager(c.hosts[0]))
    # The VMs' host is not the manager, so it asks the manager (peer API).
    src, busy, free = sorted((h for h in c.hosts if h is not m), key=lambda h: h.name) + [m]

    # Every host publishes the machine types a migration's target needs.
    for h in hosts(src):
        assert "pc-q35-10.0" in h["machines"] and "q35" in h["machines"], h

    create_on(c, src, "a", 64)
    create_on(c, busy, "load", 4096)

    # Asked of each host: the least loaded host other than the source.
    for via in c.hosts:
        doc = target(via, "a")
        assert doc["host"]["name"] == free.name, doc
        v = verdicts(doc)
        assert v[src.name] == (False, "excluded (the host the VM moves from)"), v
        assert v[busy.name] == (True, None) and v[free.name] == (True, None), v
    assert [h["name"] for h in doc["hosts"]] == sorted(h.name for h in c.hosts)

    # A spread group: the host without another member, though busier.
    src.cli("group", "create", "web", "--policy", "spread")
    create_on(c, src, "w1", 64, group="web")
    create_on(c, free, "w2", 64, group="web")
    doc = target(busy, "w1")
    assert doc["host"]["name"] == busy.name, doc
    assert verdicts(doc)[free.name] == (False, "group web (spread) already has a VM here"), doc

    # A together group living on the VM's own host: no target, and why.
    src.cli("group", "create", "tight", "--policy", "together")
    create_on(c, src, "t1", 64, group="tight")
    create_on(c, src, "t2", 64, group="tight")
    err = target(free, "t1", expect=409)["error"]
    assert err["code"] == "invalid-state"
    for h in (busy, free):
        assert f"{h.name}: group tight (together) lives on host {src.name}" in err["message"], err
    assert f"{src.name}: excluded (the host the VM moves from)" in err["message"], err
    assert {h["name"]: h["fits"] for h in err["hosts"]} == {h.name: False for h in c.hosts}
    # The VM alone in its group goes anywhere the rules allow.
    src.cli("group", "create", "solo", "--policy", "together")
    create_on(c, src, "s1", 64, group="solo")
    assert target(src, "s1")["host"]["name"] == free.name

    # --pool: the local disks go to the target's pool of that name, so only
    # a host with it fits (the least loaded one has none). Placement asked
    # for "default" only: the migration went for that host and was refused
    # ("host ... has no pool 'fast' of its own").
    (tmp_path / "fast").mkdir()
    busy.api("POST", "/v1/pools", {"name": "fast", "path": str(tmp_path / "fast")}, expect=201)
    body = {"name": "p", "memory_mib": 64, "host": src.name, "pool": "default", "blank": True,
            "disk_size_bytes": 1 << 20}
    src.task_ok("POST", "/v1/vms", body)
    src.task_ok("POST", "/v1/vms/p/start")
    assert target(src, "p")["host"]["name"] == free.name
    doc = target(free, "p", pool="fast")
    assert doc["host"]["name"] == busy.name, doc
    assert not verdicts(doc)[free.name][0], doc
    src.cli("vm", "migrate", "p", "--pool", "fast")
    vm = busy.vm("p")
    assert vm["host"] == busy.name and vm["state"] == "running", vm
    assert vm["disks"] and all(d["volume"].startswith("fast/") for d in vm["disks"]), vm

    # Too big for the other hosts: 409 with each one's memory.
    total = next(h["memory_mib"] for h in hosts(src) if h["name"] == src.name)
    for h in (busy, free):
        create_on(c, h, f"fill-{h.name}", total * 6 // 10)
    create_on(c, src, "big", total // 2)
    err = target(busy, "big", expect=409)["error"]
    for h in (busy, free):
        assert f"{h.name}: needs {total // 2} MiB" in err["message"], err

    # Bad input: a body with fields, an unknown VM; a host asked to place
    # that is not the manager does nothing and says so.
    err = busy.api("POST", "/v1/vms/a/migrate-target", {"to": busy.name}, expect=400)
    assert "left unpacked: to" in err["error"]["message"], err
    err = busy.api("POST", "/v1/vms/a/migrate-target", {"pool": "Bad/Name"}, expect=400)
    assert "pool: 'Bad/Name' is not a pool name" in err["error"]["message"], err
    target(busy, "nope", expect=404)
    status, body = busy.request("POST", "/v1/vms/a/migrate-target", {"source": src.name},
                                headers={"X-Vireo-Place": "1", "X-Vireo-Forwarded": "1"})
    assert status == 503 and "is not the cluster's manager" in body["error"]["message"], body


@pytest.mark.skipif(not OLD, reason="VIREO_OLD_VIREOD (an older vireod) not set")
def test_migrate_pool_with_an_older_manager(cluster, tmp_path):
    """The manager runs an older vireod, whose peer route refuses "pool":
    asked for a target with a pool, the answer says so (503, not its
    400 "left unpacked: pool", which blamed the caller's request); a
    migration with --pool and no --to asks it as before (the default
    pool) and goes. Before, the migration failed with that 400."""
    c = cluster(3, driver="fake", listen=False)
    old, src, other = c.hosts
    restart_as(old, OLD)
    form(c)  # old inits the cluster: the manager
    wait_until(lambda: manager(src) == old.name, 30, what=f"{old.name} the manager")
    for h in (old, other):
        (tmp_path / h.name).mkdir()
        h.api("POST", "/v1/pools", {"name": "fast", "path": str(tmp_path / h.name)},
              expect=201)
    src.task_ok("POST", "/v1/vms", {"name": "p", "memory_mib": 64, "host": src.name,
                                    "pool": "default", "blank": True,
                                    "disk_size_bytes": 1 << 20})
    src.task_ok("POST", "/v1/vms/p/start")
    err = target(src, "p", expect=503, pool="fast")["error"]
    assert err["message"] == ("the manager runs an older vireod, which cannot choose a target "
                              "with pool 'fast': upgrade it, or name the target"), err
    src.cli("vm", "migrate", "p", "--pool", "fast")
    vm = src.vm("p")
    assert vm["host"] in (old.name, other.name) and vm["state"] == "running", vm
    assert vm["disks"] and all(d["volume"].startswith("fast/") for d in vm["disks"]), vm
