"""Placement groups and the create's host on a standalone host (a cluster
of one): vireo group create|list|show|delete, vm create --group (the group
must exist; a group with VMs is not deleted), --host naming this host or
another, and the placement policy setting. The multi-host behaviour is in
test_cluster_placement.py."""

import json


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
    err = d.api("POST", "/v1/vms", {"name": "p3", "host": "elsewhere"}, expect=404)
    assert "host 'elsewhere' is not a host of this cluster" in err["error"]["message"]

    # The cluster's placement policy.
    assert d.api("GET", "/v1/placement") == {"policy": "spread"}
    assert d.api("PUT", "/v1/placement", {"policy": "pack"}) == {"policy": "pack"}
    assert "pack" in d.cli("placement", "show").stdout
    err = d.api("PUT", "/v1/placement", {"policy": "random"}, expect=400)
    assert "policy: 'random' is not spread" in err["error"]["message"]
    d.cli("placement", "set", "spread")
    assert d.api("GET", "/v1/placement") == {"policy": "spread"}
