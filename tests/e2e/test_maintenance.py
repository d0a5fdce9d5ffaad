"""A host's maintenance mode and evacuation on a real cluster
(cluster_harness: each host a network namespace with its own vireod and
etcd member; a shared pool is a directory every host sees), fake driver.
Checked: `maintenance on` moves every VM of the host (running ones live-
migrated to hosts placement picks, local disks mirrored along; a stopped
one with shared disks by its ownership transaction, then startable there;
a stopped one with a local disk by a cold move, its disk copied) and
reports per VM where it went or why it stayed (a "together" group that
fits nowhere, with each host's reason; the target's pool for local disks
missing, --pool); the host's state is "maintenance" (also after
its vireod restarts); creates pinned there are refused with that reason
and unpinned ones never land there; requests through another host's door;
`off` lets placements in again; `evacuate` moves VMs without maintenance
(a stopped VM given an ISO of the host's own pool while the evacuation
runs stays, naming it); bad input. Real-QEMU cases: three TCG guests on a
shared pool keep running on h2 after h1 enters maintenance with
--verify-memory (each migration's guest RAM compared on both sides, each
console counter goes on, a file written before is read back; creates land
on h2 until maintenance is off); a TCG guest on a local linked-clone disk
does the same after `host evacuate h1` (its disk now h2's), and a stopped
VM with a local disk moves cold beside it."""

import os

import threading

from test_iso_install import tiny_iso
from test_migrate import (assert_same_ram, counter_goes_on, create_on, error_of, form,
                          keeping_ram, shared_pool, start_counter, ticks)
from vireo_harness import BOOT_MARKER, wait_until


def where(h, name):
    """(host, state) of the VM as the cluster lists it from h."""
    found = [(v["host"], v["state"]) for v in h.api("GET", "/v1/vms?view=summary")["vms"]
             if v["name"] == name]
    assert len(found) == 1, found
    return found[0]


def host_doc(h, name):
    return h.api("GET", f"/v1/hosts/{name}")


def report_of(task):
    assert task["state"] == "succeeded", task
    return {v["vm"]: v for v in task["result"]["vms"]}


def create(h, body, expect):
    status, doc = h.request("POST", "/v1/vms", body)
    assert status == expect, (status, doc)
    if status == 202:
        task = h.wait_task(doc["task"], timeout=60)
        assert task["state"] == "succeeded", task
    return doc


def test_maintenance_moves_every_vm_and_refuses_placements(cluster):
    c = cluster(3, listen=False)
    form(c)
    h1, h2, h3 = c.hosts
    shared_pool(c)
    for name in ("web1", "web2", "web3"):
        create_on(h1, name, memory=64)
        h1.task_ok("POST", f"/v1/vms/{name}/start")
    create_on(h1, "cold", memory=64)  # stopped, its disk shared
    create_on(h1, "loc", pool=None, memory=64)  # its disk on h1's own pool
    h1.task_ok("POST", "/v1/vms/loc/start")
    create_on(h1, "cloc", pool=None, memory=64)  # stopped, its disk on h1's own pool
    # A "together" group whose members all live on h1: no other host can
    # take one of them (fits nowhere, each host says why).
    h1.api("POST", "/v1/groups", {"name": "pair", "policy": "together"}, expect=201)
    for name in ("g1", "g2"):
        body = {"name": name, "memory_mib": 64, "host": "h1", "full_clone": True,
                "networks": ["user"], "pool": "nfs", "group": "pair"}
        create(h1, body, 202)
        h1.task_ok("POST", f"/v1/vms/{name}/start")

    # Bad input: clear 4xx, nothing changes.
    assert "on" in error_of(h1, "POST", "/v1/hosts/h1/maintenance", {}, 400)
    assert "on" in error_of(h1, "POST", "/v1/hosts/h1/maintenance", {"on": "yes"}, 400)
    assert "pool: 'x/y' is not a pool name" in error_of(
        h2, "POST", "/v1/hosts/h1/maintenance", {"on": True, "pool": "x/y"}, 400)
    assert "pool" in error_of(h1, "POST", "/v1/hosts/h1/evacuate", {"pool": 7}, 400)
    assert "verify_memory: must be true or false" in error_of(
        h1, "POST", "/v1/hosts/h1/evacuate", {"verify_memory": "yes"}, 400)
    assert "verify_memory: only with" in error_of(
        h2, "POST", "/v1/hosts/h1/maintenance", {"on": False, "verify_memory": True}, 400)
    assert "pool: only with" in error_of(
        h1, "POST", "/v1/hosts/h1/maintenance", {"on": False, "pool": "nfs"}, 400)
    assert "host 'h9' does not exist" in error_of(h2, "POST", "/v1/hosts/h9/maintenance",
                                                  {"on": True}, 404)
    assert "host 'h9' does not exist" in error_of(h2, "POST", "/v1/hosts/h9/evacuate", {}, 404)
    assert host_doc(h1, "h1")["state"] == "online"
    p = h1.cli("host", "maintenance", "h1", "maybe", check=False)
    assert p.returncode != 0 and "'on' or 'off'" in p.stderr, p

    # On, through h2's door: the task runs on h1.
    doc = h2.api("POST", "/v1/hosts/h1/maintenance", {"on": True}, expect=202)
    assert doc["task"]["kind"] == "host-evacuate" and doc["task"]["target"] == "h1", doc
    task = h1.wait_task(doc["task"], timeout=120)
    rep = report_of(task)
    assert task["result"]["maintenance"] is True and task["result"]["moved"] == 6, task
    for name in ("web1", "web2", "web3", "cold", "loc", "cloc"):
        assert rep[name]["result"] == "moved" and rep[name]["host"] in ("h2", "h3"), rep[name]
    for name in ("web1", "web2", "web3", "loc"):  # live-migrated; no RAM compare asked
        assert "memory_verified" not in rep[name], rep[name]
    # The local disks went along, into the target's default pool.
    for name in ("loc", "cloc"):
        there = rep[name]["host"]
        disk = h1.vm(name)["disks"][0]["volume"]
        assert disk.startswith("default/"), disk
        hv = c.hosts[int(there[1:]) - 1]
        owned = {v["key"]: v for v in hv.api("GET", "/v1/volumes?pool=default")["volumes"]}
        assert owned[disk]["attached_to"] == name, owned
        assert os.path.exists(owned[disk]["path"]), owned
        mine = [v["key"] for v in h1.api("GET", "/v1/volumes?pool=default")["volumes"]]
        assert disk not in mine, mine
    for name in ("g1", "g2"):
        assert rep[name]["result"] == "not moved", rep[name]
        assert "h2" in rep[name]["reason"] and "h3" in rep[name]["reason"], rep[name]
    # Every host sees them elsewhere, running (the stopped one stopped).
    for h in (h1, h2, h3):
        for name in ("web1", "web2", "web3"):
            wait_until(lambda: where(h, name) == (rep[name]["host"], "running"), 30,
                       what=f"{name} running on {rep[name]['host']} seen from {h.name}")
        assert where(h, "cold")[0] == rep["cold"]["host"]
        assert where(h, "loc") == (rep["loc"]["host"], "running")
        assert where(h, "cloc") == (rep["cloc"]["host"], "defined")
        assert where(h, "g1") == ("h1", "running")
    # The stopped VM is its new host's: it starts there.
    h1.task_ok("POST", "/v1/vms/cold/start")
    assert where(h2, "cold") == (rep["cold"]["host"], "running")

    # The host is in maintenance, as every host sees it.
    for h in (h1, h2, h3):
        wait_until(lambda: host_doc(h, "h1")["state"] == "maintenance", 15,
                   what=f"h1 in maintenance seen from {h.name}")
        assert host_doc(h, "h1")["maintenance"] is True
    out = h3.cli("host", "list").stdout
    assert "maintenance" in out and "yes" in out, out
    # Creates: pinned there refused (409 naming maintenance), unpinned
    # never there.
    err = create(h2, {"name": "pinned", "memory_mib": 64, "host": "h1"}, 409)["error"]
    assert "maintenance" in err["message"], err
    for i in range(4):
        create(h3, {"name": f"free{i}", "memory_mib": 64}, 202)
        assert where(h1, f"free{i}")[0] in ("h2", "h3")
    # Nor a migration target: to h1 refused, without --to never h1.
    err = error_of(h2, "POST", "/v1/vms/web1/migrate", {"to": "h1"}, 409)
    assert "maintenance" in err, err

    # Again (idempotent), and two at once: still in maintenance; only the
    # VMs that cannot move are left, reported again.
    answers = []

    def again():
        answers.append(h3.request("POST", "/v1/hosts/h1/maintenance", {"on": True}))
    threads = [threading.Thread(target=again) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [s for s, _ in answers] == [202, 202], answers
    for _, d in answers:
        rep2 = report_of(h1.wait_task(d["task"], timeout=60))
        assert set(rep2) == {"g1", "g2"}, rep2
        assert all(v["result"] == "not moved" for v in rep2.values()), rep2
    p = h1.cli("host", "maintenance", "h1", "on", check=False)
    assert p.returncode == 1 and "g1: could not move: " in p.stdout, p
    assert "0 VMs moved, 2 stay; in maintenance" in p.stdout, p

    # Persistent: h1's vireod restarted, it is still in maintenance.
    h1.stop()
    h1.start()
    wait_until(lambda: host_doc(h2, "h1")["state"] == "maintenance", 30,
               what="h1 back, in maintenance")
    wait_until(lambda: h1.api("GET", "/v1/cluster").get("manager"), 30, what="a manager")
    err = create(h1, {"name": "pinned", "memory_mib": 64, "host": "h1"}, 409)["error"]
    assert "maintenance" in err["message"], err

    # Off (CLI, through h2): placements on h1 again.
    out = h2.cli("host", "maintenance", "h1", "off").stdout
    assert "h1: maintenance off" in out, out
    for h in (h1, h2, h3):
        wait_until(lambda: host_doc(h, "h1")["state"] == "online", 15,
                   what=f"h1 online seen from {h.name}")
        assert host_doc(h, "h1")["maintenance"] is False
    create(h2, {"name": "back", "memory_mib": 64, "host": "h1"}, 202)
    assert where(h2, "back")[0] == "h1"
    # Off twice: nothing to change, still 200.
    assert h1.api("POST", "/v1/hosts/h1/maintenance", {"on": False})["changed"] is False


def test_evacuate_without_maintenance(cluster, monkeypatch, tmp_path):
    # Test hook (VIREO_TEST_MIGRATE_FAULT): the evacuation waits before it
    # moves a stopped VM's documents, until the test says go.
    faults = tmp_path / "faults"
    faults.mkdir()
    monkeypatch.setenv("VIREO_TEST_MIGRATE_FAULT", str(faults))
    c = cluster(2, listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    create_on(h1, "b", memory=64)
    create_on(h1, "l", pool=None, memory=64)  # running, its disk on h1's own pool
    h1.task_ok("POST", "/v1/vms/l/start")
    # A CD-ROM insert of an ISO of h1's own pool lands after the evacuation
    # looked at stopped b (all shared then): b is checked again before its
    # documents move, so it stays, naming the ISO (else h2 would get a VM
    # naming a file only h1 has).
    h1.cli("volume", "import", "default/media", str(tiny_iso(tmp_path / "media.iso")),
           "--content", "iso")
    (faults / "evacuate-stopped-pause").touch()
    doc = h2.api("POST", "/v1/hosts/h1/evacuate", {"pool": "nope"}, expect=202)
    wait_until(lambda: not (faults / "evacuate-stopped-pause").exists(), 60,
               what="the evacuation at stopped b")
    h1.task_ok("POST", "/v1/vms/b/cdrom", {"volume": "default/media"})
    (faults / "evacuate-stopped-go").touch()
    rep = report_of(h2.wait_task(doc["task"], timeout=60))
    assert rep["b"]["result"] == "not moved", rep
    assert "'default/media'" in rep["b"]["reason"], rep
    assert "vireo vm cdrom eject b" in rep["b"]["reason"], rep
    assert where(h1, "b") == ("h1", "defined") and h1.vm("b")["cdrom"]["volume"] == "default/media"
    h1.task_ok("POST", "/v1/vms/b/cdrom", {})  # eject
    create_on(h1, "a", memory=64)
    h1.task_ok("POST", "/v1/vms/a/start")
    # --pool names a pool h2 does not have: the local-disk VM stays, saying
    # so (placement finds no host with that pool for its copied disk); the
    # others move (their disks are shared: nothing goes into --pool, so
    # their target need not have it).
    p = h2.cli("host", "evacuate", "h1", "--pool", "nope", check=False)
    assert p.returncode == 1, p
    assert "a: moved to h2" in p.stdout and "b: moved to h2" in p.stdout, p
    l_line = next((x for x in p.stdout.splitlines() if x.startswith("l: ")), "")
    assert l_line.startswith("l: could not move: no target host for the VM: VM l has no host "
                             "to move to (no host fits: "), p
    assert "h2: cannot reach pool nope" in l_line, p  # (the hosts' reasons in any order)
    assert "h1: 2 VMs moved, 1 stay" in p.stdout and "maintenance" not in p.stdout, p
    assert where(h1, "l") == ("h1", "running")
    # Into h2's pool "fast" (--pool): the local disk goes there.
    fast = os.path.join(h2.tmp, "fast")
    os.makedirs(fast)
    h2.api("POST", "/v1/pools", {"name": "fast", "path": fast}, expect=201)
    p = h2.cli("host", "evacuate", "h1", "--pool", "fast")
    assert "l: moved to h2" in p.stdout and "h1: 1 VM moved, 0 stay" in p.stdout, p
    assert where(h1, "l") == ("h2", "running")
    assert [d["volume"].split("/")[0] for d in h2.vm("l")["disks"]] == ["fast"], h2.vm("l")
    assert where(h1, "a") == ("h2", "running") and where(h1, "b") == ("h2", "defined")
    assert host_doc(h1, "h1")["state"] == "online" and host_doc(h1, "h1")["maintenance"] is False
    # The only other host in maintenance: nothing fits, each VM says why.
    h2.api("POST", "/v1/hosts/h1/maintenance", {"on": True}, expect=202)
    wait_until(lambda: host_doc(h2, "h1")["state"] == "maintenance", 15, what="h1 maintenance")
    doc = h1.api("POST", "/v1/hosts/h2/evacuate", {}, expect=202)
    rep = report_of(h2.wait_task(doc["task"], timeout=60))
    assert rep["a"]["result"] == "not moved" and "in maintenance" in rep["a"]["reason"], rep
    assert where(h2, "a") == ("h2", "running")


def test_maintenance_with_three_real_guests(cluster, tmp_path):
    """QEMU under TCG: three running guests on a shared pool on h1 run on h2
    after `host maintenance h1 on --verify-memory`: each migration compared
    the guest RAM of both sides (destination paused, both dumped and hashed,
    then continued: its result says memory_verified, as the report does),
    each guest's console counter goes on and a file written before is read
    back; a create without a host lands on h2 (more loaded) while h1 is in
    maintenance, and on h1 again once maintenance is off. The RAM both sides
    saved is also compared here, byte for byte."""
    keep = str(tmp_path / "ram")
    os.makedirs(keep)
    with keeping_ram(keep):
        c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    names = ("q1", "q2", "q3")
    for name in names:
        create_on(h1, name, memory=96, accel="tcg")  # boots; 64 MiB does not
        h1.cli("vm", "start", name)
    for name in names:
        h1.wait_console(name, BOOT_MARKER, timeout=240)
        h1.guest(name, f"echo written-before-{name} > /maint-check.txt; sync")
        start_counter(h1, name, wait=False)
    for name in names:
        h1.wait_console(name, "tick-3", timeout=60)
    before = {name: max(ticks(h1.console_log(name))) for name in names}
    out = h2.cli("host", "maintenance", "h1", "on", "--verify-memory", timeout=900).stdout
    for name in names:
        assert f"{name}: moved to h2 (memory verified)" in out, out
    assert "h1: 3 VMs moved, 0 stay; in maintenance" in out, out
    evacuation = next(t for t in h2.api("GET", "/v1/tasks")["tasks"]
                      if t["kind"] == "host-evacuate")
    rep = report_of(evacuation)
    for name in names:
        assert rep[name]["memory_verified"] is True, rep[name]
        mig = h1.api("GET", f"/v1/tasks/{rep[name]['task']}")
        assert mig["kind"] == "migrate" and mig["state"] == "succeeded", mig
        assert mig["result"]["memory_verified"] is True and mig["result"]["to"] == "h2", mig
        assert_same_ram(keep, h1, h2, h2.vm(name)["id"])
    for f in os.listdir(keep):  # ~600 MiB of saved RAM, compared: not left in tmp
        os.unlink(os.path.join(keep, f))
    for name in names:
        for h in (h1, h2):
            assert where(h, name) == ("h2", "running")
        counter_goes_on(h2, name, before[name])
        out = h2.guest(name, "cat /maint-check.txt")
        assert f"written-before-{name}" in out.splitlines(), out
    assert host_doc(h2, "h1")["state"] == "maintenance"
    create(h1, {"name": "during", "memory_mib": 64}, 202)  # placement: never h1 now
    assert where(h1, "during")[0] == "h2"
    h2.cli("host", "maintenance", "h1", "off")
    for h in (h1, h2):  # the manager, either one, places on h1 again
        wait_until(lambda: host_doc(h, "h1")["state"] == "online", 15,
                   what=f"h1 online again seen from {h.name}")
    create(h2, {"name": "after", "memory_mib": 64}, 202)  # h1 is the least loaded again
    assert where(h2, "after")[0] == "h1"
    for name in names:
        h2.cli("vm", "stop", name, "--force")


def test_evacuate_local_disks_with_a_real_guest(cluster):
    """QEMU under TCG: a running guest whose root disk is a linked clone on
    h1's own pool runs on h2 after `host evacuate h1 --verify-memory` (its
    RAM compared, its disk mirrored there: h2's volume, still a linked
    clone; h1's file gone), its counter still counting and a file written
    before read back; a stopped VM with a local disk moves cold beside it
    (its disk copied, it stays stopped)."""
    c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    for name in ("ql", "qs"):  # linked clones of the image on h1's default pool
        create(h1, {"name": name, "memory_mib": 256 if name == "ql" else 64, "host": "h1",
                    "networks": ["user"]}, 202)
    disks = {n: h1.vm(n)["disks"][0]["volume"] for n in ("ql", "qs")}
    src = {n: h1.api("GET", "/v1/pools/default/volumes/" + k.split("/")[1])
           for n, k in disks.items()}
    assert all(k.startswith("default/") for k in disks.values()) and src["ql"]["image"], src
    h1.cli("vm", "start", "ql")
    h1.wait_console("ql", BOOT_MARKER, timeout=240)
    out = h1.guest("ql", "echo written-before-evacuation > /evac-check.txt; sync; echo DONE")
    assert "DONE" in out, out
    start_counter(h1, "ql")
    before = max(ticks(h1.console_log("ql")))
    out = h2.cli("host", "evacuate", "h1", "--verify-memory", timeout=900).stdout
    # The live migration compared the guest's RAM; a cold move has none.
    lines = out.splitlines()
    assert "ql: moved to h2 (memory verified)" in lines and "qs: moved to h2" in lines, out
    assert "h1: 2 VMs moved, 0 stay" in out, out
    for h in (h1, h2):
        assert where(h, "ql") == ("h2", "running") and where(h, "qs") == ("h2", "defined")
    vols = {v["key"]: v for v in h2.api("GET", "/v1/volumes?pool=default")["volumes"]}
    for n, k in disks.items():
        assert vols[k]["attached_to"] == n and os.path.exists(vols[k]["path"]), vols
        assert not os.path.exists(src[n]["path"]), src[n]
    assert vols[disks["ql"]]["image"], vols[disks["ql"]]  # a linked clone there too
    counter_goes_on(h2, "ql", before)
    out = h2.guest("ql", "cat /evac-check.txt")
    assert "written-before-evacuation" in out.splitlines(), out
    h2.cli("vm", "stop", "ql", "--force")
