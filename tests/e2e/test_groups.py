"""Placement groups and the create's host on a standalone host (a cluster
of one): vireo group create|list|show|delete, vm create --group (the group
must exist; a group with VMs is not deleted), --host naming this host or
another, and the placement policy setting. The multi-host behaviour is in
test_cluster_placement.py."""

import json
import os
import sqlite3
import threading


def test_groups_on_a_standalone_host(fake_daemon):
    d = fake_daemon
    assert d.api("GET", "/v1/groups") == {"groups": []}
    g = d.api("POST", "/v1/groups", {"name": "web", "policy": "spread"}, expect=201)
    assert g["name"] == "web" and g["policy"] == "spread" and g["members"] == []
    err = d.api("POST", "/v1/groups", {"name": "web", "policy": "together"}, expect=409)
    assert "already exists" in err["error"]["message"]
    err = d.api("POST", "/v1/groups", {"name": "db", "policy": "apart"}, expect=400)
    assert "policy: 'apart' is not spread" in err["error"]["message"]
    err = d.api("POST", "/v1/groups", {"name": "Bad_Name", "policy": "spread"}, expect=400)
    assert "name: 'Bad_Name' is invalid" in err["error"]["message"]
    d.cli("group", "create", "db", "--policy", "together")
    bad = d.cli("group", "create", "x", check=False)
    assert bad.returncode == 2 and "--policy" in bad.stderr

    # A VM joins a group when it is created; the group must exist.
    err = d.api("POST", "/v1/vms", {"name": "a", "group": "nope"}, expect=400)
    assert "group 'nope' does not exist" in err["error"]["message"]
    assert d.api("GET", "/v1/vms")["vms"] == []  # nothing half-made
    doc = d.task_ok("POST", "/v1/vms", {"name": "w1", "memory_mib": 64, "group": "web"})
    me = d.api("GET", "/v1/host")
    assert doc["host"] == {"id": me["id"], "name": me["name"]}
    d.cli("vm", "create", "w2", "--memory", "64M", "--group", "web")
    assert d.vm("w1")["group"] == "web"
    assert "group:" in d.cli("vm", "show", "w1").stdout
    shown = d.api("GET", "/v1/groups/web")
    assert sorted(m["name"] for m in shown["members"]) == ["w1", "w2"]
    assert {m["host"] for m in shown["members"]} == {me["id"]}
    listed = {g["name"]: g for g in d.api("GET", "/v1/groups")["groups"]}
    assert listed["web"]["members"] == 2 and listed["db"]["members"] == 0
    out = d.cli("group", "list").stdout
    assert "web" in out and "spread" in out and "together" in out
    assert "w2" in d.cli("group", "show", "web").stdout
    assert json.loads(d.cli("--output", "json", "group", "show", "db").stdout)["policy"] == "together"

    # Not deleted while it has VMs; deleted once they are gone.
    err = d.api("DELETE", "/v1/groups/web", expect=409)["error"]["message"]
    assert "group 'web' has 2 VMs (w1, w2): delete them first" == err
    d.task_ok("DELETE", "/v1/vms/w1")
    d.task_ok("DELETE", "/v1/vms/w2")
    assert d.api("GET", "/v1/groups/web")["members"] == []
    d.cli("group", "delete", "web")
    assert d.api("GET", "/v1/groups/web", expect=404)["error"]["message"].startswith(
        "group 'web' does not exist")
    d.api("DELETE", "/v1/groups/db")

    # --host: this host (by name or id) or none other.
    d.task_ok("POST", "/v1/vms", {"name": "p1", "memory_mib": 64, "host": me["name"]})
    d.task_ok("POST", "/v1/vms", {"name": "p2", "memory_mib": 64, "host": me["id"]})
    err = d.api("POST", "/v1/vms", {"name": "p3", "host": "elsewhere"}, expect=400)
    assert "host: 'elsewhere' is not a host of this cluster" in err["error"]["message"]

    # The cluster's placement policy.
    assert d.api("GET", "/v1/placement") == {"policy": "spread"}
    assert d.api("PUT", "/v1/placement", {"policy": "pack"}) == {"policy": "pack"}
    assert "pack" in d.cli("placement", "show").stdout
    err = d.api("PUT", "/v1/placement", {"policy": "random"}, expect=400)
    assert "policy: 'random' is not spread" in err["error"]["message"]
    d.cli("placement", "set", "spread")
    assert d.api("GET", "/v1/placement") == {"policy": "spread"}


def test_group_delete_races_a_join(fake_daemon):
    """A group delete and a create into that group, at once, many times:
    either the VM joined (the delete is refused: it has a VM) or the delete
    won (the create is refused); never a VM in a group that is gone."""
    d = fake_daemon
    for i in range(12):
        d.api("POST", "/v1/groups", {"name": "race", "policy": "spread"}, expect=201)
        answers = {}

        def create():
            answers["create"] = d.request("POST", "/v1/vms",
                                          {"name": f"r{i}", "memory_mib": 64, "group": "race"})

        def delete():
            answers["delete"] = d.request("DELETE", "/v1/groups/race")

        threads = [threading.Thread(target=create), threading.Thread(target=delete)]
        for t in (threads if i % 2 else reversed(threads)):
            t.start()
        for t in threads:
            t.join(timeout=60)
        (cs, cbody), (ds, dbody) = answers["create"], answers["delete"]
        assert cs in (202, 400, 409), (cs, cbody)
        assert ds in (200, 409), (ds, dbody)
        if cs == 202:
            d.wait_task(cbody["task"])
            assert ds == 409, (ds, dbody)  # it had a VM, or was marked while the VM joined
            assert d.api("GET", "/v1/groups/race")["name"] == "race"
            assert [m["name"] for m in d.api("GET", "/v1/groups/race")["members"]] == [f"r{i}"]
            d.task_ok("DELETE", f"/v1/vms/r{i}")
        else:
            msg = cbody["error"]["message"]
            assert ("group 'race' is being deleted" in msg
                    or "group 'race' does not exist" in msg), msg
            assert d.request("GET", f"/v1/vms/r{i}")[0] == 404
        # Whichever won, no member of a missing group is left.
        groups = {g["name"] for g in d.api("GET", "/v1/groups")["groups"]}
        for key in members(d):
            assert key.split("/")[2] in groups, key
        if "race" in groups:
            d.api("DELETE", "/v1/groups/race")


def members(d):
    return d.store_keys("cluster/group-members/")


def test_checks_of_a_create_into_a_group(fake_daemon):
    d = fake_daemon
    # The field is named as sent; a name that reads as an id is refused.
    err = d.api("POST", "/v1/vms", {"name": "a", "group": "Bad_Group"}, expect=400)
    assert err["error"]["message"].startswith("group: 'Bad_Group' is invalid")
    err = d.api("POST", "/v1/vms", {"name": "0b6e3d1c-8f2a-4c55-9d7e-1a2b3c4d5e6f"},
                expect=400)
    assert "looks like a VM id" in err["error"]["message"]
    d.task_ok("POST", "/v1/vms", {"name": "plain", "memory_mib": 64})
    err = d.api("PATCH", "/v1/vms/plain", {"name": "0b6e3d1c-8f2a-4c55-9d7e-1a2b3c4d5e6f"},
                expect=400)
    assert "looks like a VM id" in err["error"]["message"]
    assert d.api("GET", "/v1/vms")["vms"][0]["name"] == "plain"

    # A group marked deleting (a delete cut short) takes no VM; the next
    # delete takes the mark over.
    d.api("POST", "/v1/groups", {"name": "web", "policy": "spread"}, expect=201)
    d.task_ok("POST", "/v1/vms", {"name": "w1", "memory_mib": 64, "group": "web"})
    vm_id = d.vm("w1")["id"]
    d.stop()
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    doc = json.loads(db.execute("SELECT value FROM documents WHERE key = "
                                "'cluster/groups/web'").fetchone()[0])
    db.execute("UPDATE documents SET value = ? WHERE key = 'cluster/groups/web'",
               (json.dumps({**doc, "deleting": True}),))
    # And a member document of a VM of this host that is gone (a create cut
    # short): removed when vireod starts.
    host_id = open(os.path.join(d.state_dir, "host-id")).read().strip()
    gone = "00000000-0000-0000-0000-00000000dead"
    db.execute("INSERT INTO documents (key, mod_rev, create_rev, lease, value) VALUES "
               "(?, 1, 1, 0, ?)", (f"cluster/group-members/web/{gone}",
                                   json.dumps({"vm": gone, "name": "gone", "host": host_id})))
    db.commit()
    db.close()
    d.start()
    assert members(d) == [f"cluster/group-members/web/{vm_id}"]
    err = d.api("POST", "/v1/vms", {"name": "w2", "memory_mib": 64, "group": "web"},
                expect=409)
    assert err["error"]["message"] == "group 'web' is being deleted"
    # Refused for its VM, the mark taken back: VMs join again.
    err = d.api("DELETE", "/v1/groups/web", expect=409)["error"]["message"]
    assert err == "group 'web' has 1 VM (w1): delete them first"
    d.task_ok("POST", "/v1/vms", {"name": "w2", "memory_mib": 64, "group": "web"})
    d.task_ok("DELETE", "/v1/vms/w1")
    d.task_ok("DELETE", "/v1/vms/w2")
    d.api("DELETE", "/v1/groups/web")
    assert members(d) == []
