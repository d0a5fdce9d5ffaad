"""Volumes and networks in projects on a fake-driver vireod (docs/projects.md,
"Volumes and networks"): volume create / import / clone and network create
with a project; ?project= and the PROJECT column; a volume's virtual size
counts against its project's disk quota (create and resize refused 409
quota-exceeded, nothing half-made; a project volume attached to a VM of its
project is not counted twice); a VM uses volumes and networks of its own
project or of none; a project holding volumes or networks is not deleted;
moves between projects are the cluster admins'; racing creates for a
project's last room make exactly one volume, and a project delete racing a
volume's or network's create never leaves one in a project that is gone;
over HTTPS a user with a role on one project sees, makes and changes that
project's volumes and networks only (others and unprojected volumes answer
404), reads and uses shared (unprojected) networks but cannot change them."""

import json
import os
import re

import pytest
import yaml

from vireo_harness import Daemon, wait_until
from test_projects import race

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIB = 1 << 30
MIB = 1 << 20


@pytest.fixture(scope="module")
def dh(tmp_path_factory):
    from test_access import Https  # the HTTPS client of the access tests
    faults = str(tmp_path_factory.mktemp("faults"))  # the fake driver's hold points
    store_faults = str(tmp_path_factory.mktemp("store-faults"))  # store writes that fail
    daemon = Daemon(driver="fake", args=["--https", "127.0.0.1:8443"],
                    env={"VIREO_FAKE_FAULTS": faults, "VIREO_TEST_STORE_FAULTS": store_faults})
    daemon.fault_dir = faults
    daemon.store_fault_dir = store_faults
    try:
        yield daemon, Https(daemon)
    finally:
        daemon.cleanup()


def disk_used(d, project):
    return d.api("GET", f"/v1/projects/{project}")["usage"]["disk_bytes"]


def object_keys(d):
    return d.store_keys("cluster/object-projects/")


def test_volumes_and_networks_carry_a_project(dh):
    d, _ = dh
    d.api("POST", "/v1/projects", {"name": "pa", "quotas": {"disk_bytes": 3 * GIB}},
          expect=201)
    d.api("POST", "/v1/projects", {"name": "pb"}, expect=201)

    # Made in a project: shown, listed, counted.
    made = d.task_ok("POST", "/v1/pools/default/volumes",
                     {"name": "va1", "size_bytes": GIB, "project": "pa"})
    assert made["volume"]["project"] == "pa"
    assert d.api("GET", "/v1/pools/default/volumes/va1")["project"] == "pa"
    assert disk_used(d, "pa") == GIB
    d.cli("volume", "create", "default/va2", "--size", "1G", "--project", "pa")
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "free", "size_bytes": MIB})
    assert d.api("GET", "/v1/pools/default/volumes/free")["project"] is None
    listed = [v["key"] for v in d.api("GET", "/v1/volumes?project=pa")["volumes"]]
    assert listed == ["default/va1", "default/va2"]
    out = d.cli("volume", "list", "--project", "pa").stdout
    assert "PROJECT" in out and "default/va2" in out and "default/free" not in out
    shown = d.api("GET", "/v1/projects/pa")
    assert sorted(v["volume"] for v in shown["volumes"]) == ["default/va1", "default/va2"]
    assert shown["usage"]["disk_bytes"] == 2 * GIB and shown["usage"]["vms"] == 0

    # Over the disk quota: refused whole; no project: refused whole.
    err = d.api("POST", "/v1/pools/default/volumes",
                {"name": "big", "size_bytes": 2 * GIB, "project": "pa"}, expect=409)
    assert err["error"]["code"] == "quota-exceeded"
    assert err["error"]["message"] == \
        f"project 'pa': quota disk_bytes is {3 * GIB} ({2 * GIB} in use); this needs {2 * GIB}"
    assert d.request("GET", "/v1/pools/default/volumes/big")[0] == 404
    err = d.api("POST", "/v1/pools/default/volumes",
                {"name": "big", "size_bytes": MIB, "project": "nope"}, expect=404)
    assert "project 'nope' does not exist" in err["error"]["message"]
    assert d.request("GET", "/v1/pools/default/volumes/big")[0] == 404
    # A clone counts the source's virtual size; a resize its growth.
    err = d.api("POST", "/v1/pools/default/volumes/va1/clone",
                {"target": "default/va1c", "project": "pa"}, expect=202)
    assert d.wait_task(err["task"])["state"] == "succeeded"
    assert d.api("GET", "/v1/pools/default/volumes/va1c")["project"] == "pa"
    assert disk_used(d, "pa") == 3 * GIB
    err = d.api("POST", "/v1/pools/default/volumes/va1/resize",
                {"size_bytes": 2 * GIB}, expect=409)
    assert err["error"]["code"] == "quota-exceeded", err
    d.task_ok("DELETE", "/v1/pools/default/volumes/va1c")
    assert disk_used(d, "pa") == 2 * GIB
    d.task_ok("POST", "/v1/pools/default/volumes/va1/resize", {"size_bytes": 2 * GIB})
    assert disk_used(d, "pa") == 3 * GIB

    # Networks: made in a project, or shared (none).
    net = d.api("POST", "/v1/networks", {"name": "na", "type": "isolated", "project": "pa"},
                expect=201)
    assert net["project"] == "pa"
    err = d.api("POST", "/v1/networks", {"name": "nx", "type": "isolated", "project": "nope"},
                expect=404)
    assert "project 'nope' does not exist" in err["error"]["message"]
    assert d.request("GET", "/v1/networks/nx")[0] == 404
    assert d.api("GET", "/v1/networks/default")["project"] is None
    assert [n["name"] for n in d.api("GET", "/v1/networks?project=pa")["networks"]] == ["na"]
    assert "pa" in d.cli("network", "show", "na").stdout

    # A VM uses volumes and networks of its project or of none (its boot
    # disk counts too: room for it).
    d.api("PATCH", "/v1/projects/pa", {"quotas": {"disk_bytes": None}})
    d.task_ok("POST", "/v1/vms", {"name": "vma", "memory_mib": 64, "project": "pa"})
    d.task_ok("POST", "/v1/vms", {"name": "vmb", "memory_mib": 64, "project": "pb"})
    err = d.api("POST", "/v1/vms/vmb/disks", {"volume": "default/va2"}, expect=409)
    assert err["error"]["message"] == "volume 'default/va2' belongs to project 'pa' and VM " \
        "'vmb' to project 'pb': a VM uses volumes and networks of its own project or of none"
    err = d.api("POST", "/v1/vms/vmb/nics", {"network": "na"}, expect=409)
    assert "network 'na' belongs to project 'pa'" in err["error"]["message"]
    d.task_ok("POST", "/v1/vms/vmb/nics", {"network": "default"})  # shared
    # Attached to a VM of its project, a project's volume counts once.
    before = disk_used(d, "pa")
    d.task_ok("POST", "/v1/vms/vma/disks", {"volume": "default/va2"})
    d.task_ok("POST", "/v1/vms/vma/nics", {"network": "na"})
    assert disk_used(d, "pa") == before
    # ... and its VM cannot leave for another project with it.
    err = d.api("PATCH", "/v1/vms/vma", {"project": "pb"}, expect=409)
    assert "belongs to project 'pa'" in err["error"]["message"], err
    assert d.vm("vma")["project"] == "pa"
    # Moves: an attached volume is not moved; a detached one is, checked.
    err = d.api("PATCH", "/v1/pools/default/volumes/va2", {"project": "pb"}, expect=409)
    assert "is attached to VM 'vma'" in err["error"]["message"]
    err = d.api("PATCH", "/v1/networks/na", {"project": "pb"}, expect=409)
    assert "has a NIC of VM 'vma'" in err["error"]["message"]
    d.task_ok("DELETE", "/v1/vms/vma")
    d.task_ok("DELETE", "/v1/vms/vmb")
    assert d.cli("volume", "set", "default/va2", "--project", "pb").stdout.strip() == \
        "default/va2: project pb"
    assert disk_used(d, "pb") == GIB
    d.api("PATCH", "/v1/pools/default/volumes/free", {"project": "pb"})
    err = d.api("PATCH", "/v1/projects/pb", {"quotas": {"disk_bytes": GIB}})
    err = d.api("PATCH", "/v1/pools/default/volumes/va1", {"project": "pb"}, expect=409)
    assert err["error"]["code"] == "quota-exceeded"
    assert d.api("GET", "/v1/pools/default/volumes/va1")["project"] == "pa"

    # A restart of vireod keeps them (documents in the store).
    d.stop()
    d.start()
    assert d.api("GET", "/v1/pools/default/volumes/va1")["project"] == "pa"
    assert d.api("GET", "/v1/networks/na")["project"] == "pa"
    assert disk_used(d, "pa") == 2 * GIB

    # A project holding volumes or networks stays.
    err = d.api("DELETE", "/v1/projects/pa", expect=409)
    assert err["error"]["message"].startswith(
        "project 'pa' holds 2 volumes or networks (volume 'default/va1', network 'na')") \
        or err["error"]["message"].startswith(
        "project 'pa' holds 2 volumes or networks (network 'na', volume 'default/va1')"), err
    d.task_ok("DELETE", "/v1/pools/default/volumes/va1")
    d.api("DELETE", "/v1/networks/na")
    d.api("DELETE", "/v1/projects/pa")
    assert d.cli("network", "set", "default", "--project", "pb").returncode == 0
    d.cli("network", "set", "default", "--project", "none")
    for v in ("va2", "free"):
        d.task_ok("DELETE", f"/v1/pools/default/volumes/{v}")
    d.api("DELETE", "/v1/projects/pb")
    assert object_keys(d) == []


def test_creates_and_deletes_race(dh):
    d, _ = dh
    # Two creates for the last GiB: exactly one volume.
    d.api("POST", "/v1/projects", {"name": "last", "quotas": {"disk_bytes": GIB}}, expect=201)
    answers = race(2, lambda k: d.request("POST", "/v1/pools/default/volumes", {
        "name": f"last{k}", "size_bytes": GIB, "project": "last"}))
    statuses = sorted(s for s, _ in answers)
    assert statuses == [202, 409], answers
    for s, body in answers:
        if s == 202:
            d.wait_task(body["task"])
            d.task_ok("DELETE", f"/v1/pools/default/volumes/{body['volume']['name']}")
        else:
            assert body["error"]["code"] == "quota-exceeded"
    d.api("DELETE", "/v1/projects/last")

    # A project delete and a volume's or a network's create into it: one wins.
    for i in range(6):
        d.api("POST", "/v1/projects", {"name": "gone"}, expect=201)
        network = i % 2 == 1
        name = f"g{i}"

        def create(k):
            if k:
                return d.request("DELETE", "/v1/projects/gone")
            if network:
                return d.request("POST", "/v1/networks",
                                 {"name": name, "type": "isolated", "project": "gone"})
            return d.request("POST", "/v1/pools/default/volumes",
                             {"name": name, "size_bytes": MIB, "project": "gone"})
        (cs, cbody), (ds, dbody) = race(2, create)
        if cs in (201, 202):
            if not network:
                d.wait_task(cbody["task"])
            assert ds == 409 and "holds 1 volume or network" in dbody["error"]["message"], \
                (cbody, dbody)
            if network:
                d.api("DELETE", f"/v1/networks/{name}")
            else:
                d.task_ok("DELETE", f"/v1/pools/default/volumes/{name}")
            d.api("DELETE", "/v1/projects/gone")
        else:
            assert ds == 200, dbody
            assert cs == 404 and "project 'gone' does not exist" in \
                cbody["error"]["message"], cbody
            path = f"/v1/networks/{name}" if network else f"/v1/pools/default/volumes/{name}"
            assert d.request("GET", path)[0] == 404
        assert object_keys(d) == []
        assert d.store_keys("cluster/project-usage/gone/") == []


def test_project_users_over_https(dh):
    d, h = dh
    for p in ("ta", "tb"):
        d.api("POST", "/v1/projects", {"name": p}, expect=201)
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "tb1", "size_bytes": MIB,
                                                    "project": "tb"})
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "shared1", "size_bytes": MIB})
    d.api("POST", "/v1/networks", {"name": "ntb", "type": "isolated", "project": "tb"},
          expect=201)
    d.task_ok("POST", "/v1/vms", {"name": "vta", "memory_mib": 64, "project": "ta"})
    d.cli("user", "create", "carl", "--role", "none", "--password-file", "-",
          input="carl's password\n")
    d.cli("user", "grant", "carl", "--role", "admin", "--project", "ta")
    d.cli("user", "create", "olga", "--role", "none", "--password-file", "-",
          input="olga's password\n")
    d.cli("user", "grant", "olga", "--role", "operator", "--project", "ta")
    tok = d.api("POST", "/v1/tokens", {"role": "admin", "user": "carl"}, expect=201)["secret"]
    otok = d.api("POST", "/v1/tokens", {"role": "operator", "user": "olga"},
                 expect=201)["secret"]

    def calls(*reqs):
        out = []
        for r in reqs:
            method, path, body, token = (*r, None, None)[:4]
            out.append({"method": method, "path": path, "body": body,
                        "headers": {"Authorization": "Bearer " + (token or tok)}})
        return h.many(out)

    (made, made_b, made_none, by_operator, net, net_b, pools, vols, nets, other, shared,
     shared_net, other_net) = calls(
        ("POST", "/v1/pools/default/volumes", {"name": "ta1", "size_bytes": MIB,
                                               "project": "ta"}),
        ("POST", "/v1/pools/default/volumes", {"name": "x1", "size_bytes": MIB,
                                               "project": "tb"}),
        ("POST", "/v1/pools/default/volumes", {"name": "x2", "size_bytes": MIB}),
        ("POST", "/v1/pools/default/volumes", {"name": "x3", "size_bytes": MIB,
                                               "project": "ta"}, otok),
        ("POST", "/v1/networks", {"name": "nta", "type": "isolated", "project": "ta"}),
        ("POST", "/v1/networks", {"name": "nx", "type": "isolated"}),
        ("GET", "/v1/pools"), ("GET", "/v1/volumes"), ("GET", "/v1/networks"),
        ("GET", "/v1/pools/default/volumes/tb1"), ("GET", "/v1/pools/default/volumes/shared1"),
        ("GET", "/v1/networks/default"), ("GET", "/v1/networks/ntb"))
    assert made["status"] == 202 and made["body"]["volume"]["project"] == "ta", made
    d.wait_task(made["body"]["task"])
    assert made_b["status"] == 403 and made_b["body"]["error"]["message"].startswith(
        "creating a volume needs the admin role on project 'tb'; token:"), made_b
    assert made_none["status"] == 403 and made_none["body"]["error"]["message"].startswith(
        "creating a volume needs the admin role on the cluster"), made_none
    assert by_operator["status"] == 403, by_operator
    assert net["status"] == 201 and net["body"]["project"] == "ta", net
    assert net_b["status"] == 403, net_b
    assert pools["status"] == 200 and pools["body"]["pools"], pools
    own = [v["key"] for v in vols["body"]["volumes"] if not v["project_of_vm"]]
    assert own == ["default/ta1"], vols
    # its VM's disks (made with it, of no project of their own) follow it
    disks = [v for v in vols["body"]["volumes"] if v["project_of_vm"]]
    assert disks and all(v["attached_to"] == "vta" and v["project"] == "ta"
                         for v in disks), vols
    assert all(v["project"] in ("ta", "tb") or v["attached_to"] != "vta"
               for v in d.api("GET", "/v1/volumes")["volumes"])
    assert sorted(n["name"] for n in nets["body"]["networks"]) == ["default", "nta"], nets
    for ans, key in ((other, "default/tb1"), (shared, "default/shared1")):
        assert ans["status"] == 404 and \
            ans["body"]["error"]["message"] == f"volume '{key}' does not exist", ans
    assert shared_net["status"] == 200, shared_net
    assert other_net["status"] == 404, other_net
    for x in ("x1", "x2", "x3", "nx"):
        path = f"/v1/networks/{x}" if x == "nx" else f"/v1/pools/default/volumes/{x}"
        assert d.request("GET", path)[0] == 404

    (attach_shared, attach_other, nic_shared, move, move_net, del_shared_net, resize,
     op_read, op_delete) = calls(
        ("POST", "/v1/vms/vta/disks", {"volume": "default/shared1"}),
        ("POST", "/v1/vms/vta/disks", {"volume": "default/tb1"}),
        ("POST", "/v1/vms/vta/nics", {"network": "default"}),
        ("PATCH", "/v1/pools/default/volumes/ta1", {"project": "tb"}),
        ("PATCH", "/v1/networks/nta", {"project": None}),
        ("DELETE", "/v1/networks/default"),
        ("POST", "/v1/pools/default/volumes/ta1/resize", {"size_bytes": 2 * MIB}),
        ("GET", "/v1/pools/default/volumes/ta1", None, otok),
        ("DELETE", "/v1/pools/default/volumes/ta1", None, otok))
    assert attach_shared["status"] == 404, attach_shared
    assert attach_other["status"] == 404, attach_other
    assert nic_shared["status"] == 202, nic_shared
    d.wait_task(nic_shared["body"]["task"])
    assert move["status"] == 403 and "moving a volume between projects needs the admin " \
        "role on the cluster" in move["body"]["error"]["message"], move
    assert move_net["status"] == 403, move_net
    assert del_shared_net["status"] == 403 and \
        "changing a network of no project" in del_shared_net["body"]["error"]["message"]
    assert resize["status"] == 202, resize
    d.wait_task(resize["body"]["task"])
    assert op_read["status"] == 200 and op_read["body"]["project"] == "ta", op_read
    assert op_delete["status"] == 403 and "needs the admin role" in \
        op_delete["body"]["error"]["message"], op_delete

    dele, dele_net = calls(("DELETE", "/v1/pools/default/volumes/ta1"),
                           ("DELETE", "/v1/networks/nta"))
    assert dele["status"] == 202, dele
    d.wait_task(dele["body"]["task"])
    assert dele_net["status"] == 200, dele_net
    assert d.request("GET", "/v1/networks/default")[0] == 200

    # What reaches the host itself stays the cluster admins', even in a
    # project where the user is admin: a volume imported from a path on the
    # host (any file vireod reads), a network on a host bridge or uplink or
    # with a bridge name of its own (another network's segment).
    imp, on_bridge, on_vlan, named_bridge = calls(
        ("POST", "/v1/pools/default/volumes", {"name": "ta9", "import_path": "/etc/passwd",
                                               "project": "ta"}),
        ("POST", "/v1/networks", {"name": "nbr", "type": "bridge", "bridge": "lo",
                                  "project": "ta"}),
        ("POST", "/v1/networks", {"name": "nvl", "type": "vlan", "uplink": "lo", "vlan": 7,
                                  "project": "ta"}),
        ("POST", "/v1/networks", {"name": "nnb", "type": "isolated", "bridge": "vbr-ntb",
                                  "project": "ta"}))
    assert imp["status"] == 403 and imp["body"]["error"]["message"].startswith(
        "importing a volume from a path on the host (import_path) needs the admin role on "
        "the cluster"), imp
    for ans in (on_bridge, on_vlan, named_bridge):
        assert ans["status"] == 403 and ans["body"]["error"]["message"].startswith(
            "a network on a host bridge or interface"), ans
    assert d.request("GET", "/v1/pools/default/volumes/ta9")[0] == 404
    for x in ("nbr", "nvl", "nnb"):
        assert d.request("GET", f"/v1/networks/{x}")[0] == 404

    # Another project's network is one they do not see, when a VM of theirs
    # would join it too (not a 409 naming that project).
    nic_other, vm_other = calls(
        ("POST", "/v1/vms/vta/nics", {"network": "ntb"}),
        ("POST", "/v1/vms", {"name": "vta2", "memory_mib": 64, "project": "ta",
                             "networks": ["default", "ntb"]}))
    for ans in (nic_other, vm_other):
        assert ans["status"] == 404 and \
            ans["body"]["error"]["message"] == "network 'ntb' does not exist", ans
    assert d.request("GET", "/v1/vms/vta2")[0] == 404


def store_write(d, docs=None, delete_like=None):
    """Puts docs ({key: value}) in the SQLite store of the running vireod,
    or deletes the keys LIKE delete_like (WAL mode: it reads them at once):
    another host's documents, which a standalone host cannot make."""
    import sqlite3
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"), timeout=30)
    try:
        if delete_like:
            db.execute("DELETE FROM documents WHERE key LIKE ?", (delete_like,))
        rev = db.execute("SELECT MAX(mod_rev) FROM documents").fetchone()[0]
        for key, value in (docs or {}).items():
            db.execute("INSERT INTO documents (key, mod_rev, create_rev, lease, value) "
                       "VALUES (?, ?, ?, 0, ?)", (key, rev, rev, json.dumps(value)))
        db.commit()
    finally:
        db.close()


def test_counts_of_the_cluster_and_a_project_users_pool(dh):
    """A project's volume and network counts are the cluster's (its usage
    documents, another host's objects too), in the list, the show and the
    CLI; a user with a role on one project only reads, in the pools' list
    and a pool's show, the count of the volumes it sees there (its
    project's and its project's VM's disks), not the pool's all, with an
    ETag of its own; every answer is Cache-Control: private."""
    d, h = dh
    for p in ("ca", "cb"):
        d.api("POST", "/v1/projects", {"name": p}, expect=201)
    made = [("ca1", "ca"), ("cb1", "cb"), ("cb2", "cb"), ("cnone", None)]
    for name, p in made:
        d.task_ok("POST", "/v1/pools/default/volumes",
                  {"name": name, "size_bytes": MIB, **({"project": p} if p else {})})
    d.api("POST", "/v1/networks", {"name": "nca", "type": "isolated", "project": "ca"},
          expect=201)
    d.task_ok("POST", "/v1/vms", {"name": "vca", "memory_mib": 64, "project": "ca"})
    usage = "cluster/project-usage/ca/"
    far = {usage + "volume:h-far:default:far": {"kind": "volume", "object": "default/far",
                                                "scope": "h-far", "host": "h-far",
                                                "disk_bytes": 0},
           usage + "network:h-far:nfar": {"kind": "network", "object": "nfar",
                                          "scope": "h-far", "host": "h-far", "disk_bytes": 0},
           # A kind this version does not know (a newer host's): neither.
           usage + "image:h-far:ifar": {"kind": "image", "object": "ifar",
                                        "scope": "h-far", "host": "h-far", "disk_bytes": 0}}
    store_write(d, far)
    d.cli("user", "create", "cora", "--role", "none", "--password-file", "-",
          input="cora's password\n")
    d.cli("user", "grant", "cora", "--role", "viewer", "--project", "ca")
    tok = d.api("POST", "/v1/tokens", {"role": "viewer", "user": "cora"}, expect=201)["secret"]
    try:
        listed = {p["name"]: p for p in d.api("GET", "/v1/projects")["projects"]}
        assert listed["ca"]["counts"] == {"volumes": 2, "networks": 2}, listed["ca"]
        assert listed["cb"]["counts"] == {"volumes": 2, "networks": 0}, listed["cb"]
        assert d.api("GET", "/v1/projects/ca")["counts"] == {"volumes": 2, "networks": 2}
        out = d.cli("project", "show", "ca").stdout
        assert "volumes:" in out and "networks:" in out, out
        assert "VOLUMES" in d.cli("project", "list").stdout

        auth = {"Authorization": "Bearer " + tok}
        pools, pool, vols = h.many([{"method": "GET", "path": path, "headers": auth}
                                    for path in ("/v1/pools", "/v1/pools/default",
                                                 "/v1/volumes?pool=default")])
        seen = [v["name"] for v in vols["body"]["volumes"]]
        assert "ca1" in seen and len(seen) >= 2 and "cb1" not in seen, seen  # + vca's disk
        default, = [p for p in pools["body"]["pools"] if p["name"] == "default"]
        assert default["volumes"] == len(seen), (default, seen)
        assert pool["body"]["volumes"] == len(seen), pool
        everything = d.api("GET", "/v1/pools/default")["volumes"]
        assert everything >= len(seen) + 3, everything  # cb1, cb2, cnone

        # Each caller's count, each its own ETag, kept from shared caches;
        # an ETag another caller was given is no 304 (nor any) to it.
        d.cli("user", "create", "dana", "--role", "none", "--password-file", "-",
              input="dana's password\n")
        d.cli("user", "grant", "dana", "--role", "admin", "--project", "cb")
        tok_b = d.api("POST", "/v1/tokens", {"role": "admin", "user": "dana"},
                      expect=201)["secret"]
        admin = d.cli_json("token", "create", "--role", "admin")["secret"]
        mine, theirs, whole = h.many([{"method": "GET", "path": "/v1/pools/default",
                                       "headers": {"Authorization": "Bearer " + t}}
                                      for t in (tok, tok_b, admin)])
        assert (mine["body"]["volumes"], theirs["body"]["volumes"]) == (len(seen), 2)
        tags = [a["headers"]["etag"] for a in (mine, theirs, whole)]
        assert len(set(tags)) == 3, tags
        assert all("private" in a["headers"]["cache-control"] for a in (mine, theirs, whole))
        assert "private" in h.one("GET", "/v1/whoami", token=tok)["headers"]["cache-control"]
        # Every answer is its caller's: a project another user is answered
        # 404 for, the admins' list of tokens.
        for one in h.many([{"method": "GET", "path": "/v1/projects/ca", "headers": auth},
                           {"method": "GET", "path": "/v1/tokens",
                            "headers": {"Authorization": "Bearer " + admin}}]):
            assert one["status"] == 200, one
            assert "private" in one["headers"].get("cache-control", ""), one
        # The view's ETag is one the contract allows (api/openapi.yaml).
        with open(os.path.join(ROOT, "api", "openapi.yaml")) as f:
            pattern = yaml.safe_load(f)["components"]["headers"]["ETag"]["schema"]["pattern"]
        assert all(re.search(pattern, t) for t in tags), (pattern, tags)
        again = h.one("GET", "/v1/pools/default", token=tok,
                      headers={"If-None-Match": tags[1]})
        assert again["status"] == 200 and again["body"]["volumes"] == len(seen), again
        # The revision comes first: the cluster's admin's ETag is that alone.
        assert tags[2] == tags[0].split("-")[0] + '"', tags
    finally:
        store_write(d, delete_like=usage + "%:h-far:%")
        d.request("DELETE", "/v1/users/dana")
        d.request("DELETE", "/v1/users/cora")
        d.task_ok("DELETE", "/v1/vms/vca")
        for name, _ in made:
            d.task_ok("DELETE", f"/v1/pools/default/volumes/{name}")
        d.api("DELETE", "/v1/networks/nca")
        for p in ("ca", "cb"):
            d.api("DELETE", f"/v1/projects/{p}")


def test_moves_wait_for_attaches(dh):
    """A volume's (a network's) move to another project while it is being
    attached (a NIC added on it) to a VM of a project it does not go to is
    refused busy, so the two never both commit (a VM of one project using
    another project's volume or network): the attach's project check and
    its VM's record come before or after the move, not around it."""
    d, _ = dh
    for p in ("ma", "mb"):
        d.api("POST", "/v1/projects", {"name": p}, expect=201)
    d.task_ok("POST", "/v1/vms", {"name": "vmm", "memory_mib": 64, "project": "ma"})
    d.task_ok("POST", "/v1/vms/vmm/start")
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "mv", "size_bytes": MIB})
    d.api("POST", "/v1/networks", {"name": "mn", "type": "isolated"}, expect=201)
    for op, moved, attach in (
            ("disk_attach", "/v1/pools/default/volumes/mv",
             ("POST", "/v1/vms/vmm/disks", {"volume": "default/mv"})),
            ("nic_attach", "/v1/networks/mn", ("POST", "/v1/vms/vmm/nics", {"network": "mn"}))):
        hold = os.path.join(d.fault_dir, op + ".hold")
        held = os.path.join(d.fault_dir, op + ".held")
        open(hold, "w").close()
        try:
            task = d.api(*attach, expect=202)["task"]
            wait_until(lambda: os.path.exists(held), 30,
                       what=f"{op} held: {d.api('GET', '/v1/tasks/' + task['id'])}")
            err = d.api("PATCH", moved, {"project": "mb"}, expect=409)
            assert "busy" in err["error"]["message"] or "being attached" in \
                err["error"]["message"], err
        finally:
            os.unlink(hold)
        assert d.wait_task(task)["state"] == "succeeded"
        assert not [k for k in object_keys(d) if k.endswith(("/default/mv", "/mn"))]
    d.task_ok("POST", "/v1/vms/vmm/stop", {"force": True})
    d.task_ok("DELETE", "/v1/vms/vmm")
    d.api("DELETE", "/v1/networks/mn")
    d.task_ok("DELETE", "/v1/pools/default/volumes/mv")


def test_volume_edit_refused_whole(dh):
    """PATCH of a volume's shareable and project: a refused move changes
    nothing (not the shareable flag either); If-Match holds for a move."""
    d, _ = dh
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "ew", "size_bytes": MIB})
    err = d.api("PATCH", "/v1/pools/default/volumes/ew", {"shareable": True, "project": "nope"},
                expect=404)
    assert "project 'nope' does not exist" in err["error"]["message"], err
    assert d.api("GET", "/v1/pools/default/volumes/ew")["shareable"] is False
    d.api("POST", "/v1/projects", {"name": "ew"}, expect=201)
    status, err = d.request("PATCH", "/v1/pools/default/volumes/ew", {"project": "ew"},
                            headers={"If-Match": '"1"'})
    assert status == 412 and err["error"]["code"] == "precondition-failed", err
    assert d.api("GET", "/v1/pools/default/volumes/ew")["project"] is None
    d.task_ok("DELETE", "/v1/pools/default/volumes/ew")
    d.api("DELETE", "/v1/projects/ew")


def test_shareable_volume_of_no_project_counts_for_no_vm(dh):
    """An admin's shareable volume of no project, attached to VMs of two
    projects, counts in neither's disk usage (nor does its resize, nor its
    detach give anything back); one that is not shareable counts in its
    VM's (test_projects.test_disk_quota), a project's in its project's."""
    d, _ = dh
    for p in ("sa", "sb"):
        d.api("POST", "/v1/projects", {"name": p, "quotas": {"disk_bytes": 2 * GIB}},
              expect=201)
    for vm, p in (("vsa", "sa"), ("vsb", "sb")):
        d.task_ok("POST", "/v1/vms", {"name": vm, "memory_mib": 64, "project": p,
                                      "disk_size_bytes": GIB})
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "shv", "size_bytes": 4 * GIB})
    d.api("PATCH", "/v1/pools/default/volumes/shv", {"shareable": True})
    # 4 GiB would take either project over its 2 GiB: not counted, admitted.
    d.task_ok("POST", "/v1/vms/vsa/disks", {"volume": "default/shv"})
    d.task_ok("POST", "/v1/vms/vsb/disks", {"volume": "default/shv"})
    assert disk_used(d, "sa") == GIB and disk_used(d, "sb") == GIB
    d.task_ok("POST", "/v1/pools/default/volumes/shv/resize", {"size_bytes": 5 * GIB})
    assert disk_used(d, "sa") == GIB and disk_used(d, "sb") == GIB
    d.stop()  # nor after a restart
    d.start()
    assert disk_used(d, "sa") == GIB and disk_used(d, "sb") == GIB
    d.task_ok("DELETE", "/v1/vms/vsa/disks/1")
    assert disk_used(d, "sa") == GIB
    # A VM created on it (its boot disk) does not count it either.
    d.task_ok("POST", "/v1/vms", {"name": "vsc", "memory_mib": 64, "project": "sa",
                                  "disk_volume": "default/shv"})
    assert disk_used(d, "sa") == GIB
    for vm in ("vsa", "vsb", "vsc"):
        d.task_ok("DELETE", f"/v1/vms/{vm}")
    assert disk_used(d, "sa") == 0 and disk_used(d, "sb") == 0
    d.task_ok("DELETE", "/v1/pools/default/volumes/shv")
    for p in ("sa", "sb"):
        d.api("DELETE", f"/v1/projects/{p}")


def test_subnet_overlapping_the_host_refused(dh):
    """A nat or isolated network's subnet that overlaps the host's own
    addresses or routes (or another network's) is refused 409 naming the
    overlap, for a project's admin over HTTPS as for root; nothing is made."""
    d, h = dh
    d.ns("ip", "link", "add", "plx0", "type", "veth", "peer", "name", "plx1")
    try:
        d.ns("ip", "addr", "add", "192.168.77.5/24", "dev", "plx0")
        d.ns("ip", "link", "set", "plx0", "up")
        d.api("POST", "/v1/projects", {"name": "sn"}, expect=201)
        d.cli("user", "create", "nina", "--role", "none", "--password-file", "-",
              input="nina's password\n")
        d.cli("user", "grant", "nina", "--role", "admin", "--project", "sn")
        tok = d.api("POST", "/v1/tokens", {"role": "admin", "user": "nina"},
                    expect=201)["secret"]
        auth = {"Authorization": "Bearer " + tok}
        answers = h.many([
            {"method": "POST", "path": "/v1/networks", "headers": auth,
             "body": {"name": f"ov{i}", "type": "nat", "subnet": subnet, "project": "sn"}}
            for i, subnet in enumerate(["192.168.77.0/24", "192.168.0.0/16", "192.168.77.16/28",
                                        "10.230.0.0/24", "10.230.0.0/25"])])
        for a in answers[:3]:
            assert a["status"] == 409, a
            assert a["body"]["error"]["code"] == "already-exists", a
            msg = a["body"]["error"]["message"]
            assert "overlaps the host's" in msg and "on plx0" in msg, msg
        assert answers[0]["body"]["error"]["message"].startswith(
            "subnet: 192.168.77.0/24 overlaps the host's "), answers[0]
        assert answers[3]["status"] == 201, answers[3]
        assert answers[4]["status"] == 409, answers[4]
        assert "overlaps network 'ov3' (10.230.0.0/24)" in \
            answers[4]["body"]["error"]["message"], answers[4]
        # Root too, for isolated networks as well; nothing made.
        err = d.api("POST", "/v1/networks", {"name": "ovr", "type": "isolated",
                                              "subnet": "192.168.77.0/25"}, expect=409)
        assert "overlaps the host's" in err["error"]["message"], err
        bad = d.cli("network", "create", "ovr", "--type", "nat", "--subnet", "192.168.64.0/20",
                    check=False)
        assert bad.returncode != 0 and "overlaps the host's route 192.168.77.0/24 on plx0" \
            in bad.stderr, bad.stderr
        names = [n["name"] for n in d.api("GET", "/v1/networks")["networks"]]
        assert names.count("ov3") == 1 and not {"ov0", "ov1", "ov2", "ov4", "ovr"} & set(names)
        assert "vbr-ov0" not in d.ns("ip", "link", "show").stdout
        d.api("DELETE", "/v1/networks/ov3")
    finally:
        d.ns("ip", "link", "del", "plx0", check=False)
    d.api("DELETE", "/v1/projects/sn")


def test_left_behind_by_a_crash(dh):
    """vireod killed between a volume's (a network's) delete and the removal
    of its project's documents: at the next start they go, and the project
    can be deleted. One left by a failed store write goes at the project's
    delete. One of another host that is not known is never removed: the
    refusal says so."""
    import sqlite3
    import threading
    d, _ = dh
    d.api("POST", "/v1/projects", {"name": "crash"}, expect=201)
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "cv", "size_bytes": MIB,
                                                    "project": "crash"})
    d.api("POST", "/v1/networks", {"name": "cn", "type": "isolated", "project": "crash"},
          expect=201)
    usage = "cluster/project-usage/crash/"
    assert len(d.store_keys(usage)) == 2
    holds = [os.path.join(d.fault_dir, op) for op in ("volume_forget_project",
                                                      "network_forget_project")]
    for hold in holds:
        open(hold + ".hold", "w").close()

    def delete_network():  # answered never: vireod is killed while it is held
        try:
            d.request("DELETE", "/v1/networks/cn")
        except OSError:
            pass
    try:
        d.api("DELETE", "/v1/pools/default/volumes/cv", expect=202)
        deleting = threading.Thread(target=delete_network, daemon=True)
        deleting.start()
        for hold in holds:
            wait_until(lambda: os.path.exists(hold + ".held"), 30, what=hold)
        d.kill9()
        deleting.join(timeout=10)
    finally:
        for hold in holds:
            for end in (".hold", ".held"):
                if os.path.exists(hold + end):
                    os.unlink(hold + end)
    assert len(d.store_keys(usage)) == 2  # left behind
    # Another host's volume, a host the cluster does not know: kept.
    store_write(d, {"cluster/object-projects/volume/h-gone/default/ghost":
                    {"project": "crash", "disk_bytes": MIB},
                    usage + "volume:h-gone:default:ghost":
                    {"kind": "volume", "object": "default/ghost", "scope": "h-gone",
                     "host": "h-gone", "disk_bytes": MIB}})
    d.start()
    assert d.store_keys(usage) == [usage + "volume:h-gone:default:ghost"]
    assert d.request("GET", "/v1/pools/default/volumes/cv")[0] == 404
    assert d.request("GET", "/v1/networks/cn")[0] == 404
    assert "volume default/cv is gone" in d.log()
    err = d.api("DELETE", "/v1/projects/crash", expect=409)
    assert "volume 'default/ghost' (on host h-gone, which is not a member of the cluster" \
        in err["error"]["message"], err
    assert len(d.store_keys(usage)) == 1

    # A store write that fails leaves them too: the project's delete heals.
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "fv", "size_bytes": MIB,
                                                    "project": "crash"})
    key, = [k for k in object_keys(d) if k.endswith("/default/fv")]
    with open(os.path.join(d.store_fault_dir, "delete@" + key.replace("/", "+")), "w") as f:
        f.write("1 EIO\n")
    d.task_ok("DELETE", "/v1/pools/default/volumes/fv")
    assert len(d.store_keys(usage)) == 2
    assert disk_used(d, "crash") == 2 * MIB
    err = d.api("DELETE", "/v1/projects/crash", expect=409)
    assert "'default/fv'" not in err["error"]["message"], err
    assert len(d.store_keys(usage)) == 1

    store_write(d, delete_like="%ghost")  # the ghost goes as it came
    d.api("DELETE", "/v1/projects/crash")
