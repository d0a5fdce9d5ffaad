"""A project's quota across the hosts of a cluster (fake driver, two hosts
formed with vireo cluster init/join): the project and its usage are
documents of the whole cluster (etcd), so creates racing for the last slot
through two hosts, each making its VM on itself, make exactly one VM, and
each host shows the other's VM in the project's usage; a VM moved to the
other host keeps its usage (its record follows it), also its disk figure,
which its spec does not hold, through a save on the new host; volumes made
in a project on each host count against its disk quota across hosts
(racing creates on two hosts make one volume), counted in its volumes by
either host, and keep a project deleted
through the other host from going; a shared volume's move to another
project on one host and its attach to a VM of another project on the
other never both commit, whichever goes first; a volume of the project on
a host's local pool, moved with its VM to the other host, stays in the
project under its new host; a standalone host's projects are merged at its
join (refused while they would exceed a quota); new VMs without a host and
DRS keep to the hosts whose network of the name a NIC asks for is the VM's
project's (each host's own "lan" of another project), a network no host
has is one 400, and a network made a moment ago is found by a VM created
at once after (the host record is rewritten before the network's answer).
(Here the creates
may meet one after the other; the tight interleaving, both checked before
either commits, is pinned by tests/unit/test-relations.c on the store.)"""

import os
import threading

from test_cluster_placement import form
from test_cluster_shared_pools import pool_on
from test_drs import a_recommendation, decisions, set_load
from vireo_harness import wait_until

MIB = 1 << 20


def test_quota_holds_across_hosts(cluster, tmp_path, monkeypatch):
    faults = str(tmp_path / "faults")  # both hosts' hold points (fake driver)
    os.makedirs(faults)
    monkeypatch.setenv("VIREO_FAKE_FAULTS", faults)
    c = cluster(2, driver="fake", listen=False)
    form(c)
    h1, h2 = c.hosts
    h1.api("POST", "/v1/projects", {"name": "shared", "quotas": {"vms": 1}}, expect=201)
    assert h2.api("GET", "/v1/projects/shared")["quotas"] == {"vms": 1}
    for rnd in range(3):
        answers = {}
        go = threading.Barrier(4)

        def create(h, i):
            go.wait(timeout=30)
            answers[(h.name, i)] = h.request("POST", "/v1/vms", {
                "name": f"c{rnd}-{h.name}-{i}", "memory_mib": 64, "project": "shared",
                "host": h.name})

        threads = [threading.Thread(target=create, args=(h, i)) for h in (h1, h2)
                   for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        made = [k for k, (status, _) in answers.items() if status == 202]
        assert len(answers) == 4 and len(made) == 1, answers
        for k, (status, body) in answers.items():
            if k not in made:
                assert status == 409 and body["error"]["code"] == "quota-exceeded", body
        (host_name, i), = made
        owner = h1 if host_name == h1.name else h2
        owner.wait_task(answers[made[0]][1]["task"])
        name = f"c{rnd}-{host_name}-{i}"
        for h in (h1, h2):  # the usage of the whole cluster, from either host
            shown = h.api("GET", "/v1/projects/shared")
            assert shown["usage"]["vms"] == 1 and shown["vms"][0]["name"] == name, shown
        owner.task_ok("DELETE", f"/v1/vms/{name}")

    # A VM moved to the other host keeps its usage, now under that host:
    # its old host, restarted, does not take it for an orphan of its own.
    h1.task_ok("POST", "/v1/vms", {"name": "mover", "memory_mib": 64, "project": "shared",
                                   "host": h1.name})
    # ... and a volume of the project on h1's local pool, its disk, moves
    # with it: its project documents follow it to h2 (counted once, shown
    # on h2 in the project and in h2's list of the project's volumes).
    h1.task_ok("POST", "/v1/pools/default/volumes", {"name": "mover-data",
                                                      "size_bytes": 64 << 20,
                                                      "project": "shared"})
    h1.task_ok("POST", "/v1/vms/mover/disks", {"volume": "default/mover-data"})
    disk = h1.api("GET", "/v1/projects/shared")["usage"]["disk_bytes"]
    assert disk > 64 << 20
    h1_id, h2_id = (h.api("GET", "/v1/host")["id"] for h in (h1, h2))
    before = h1.api("GET", "/v1/projects/shared")
    assert [(v["volume"], v["host"]) for v in before["volumes"]] == \
        [("default/mover-data", h1_id)], before
    h2.cli("vm", "move", "mover", "--to", h2.name, timeout=300)
    h2.api("PATCH", "/v1/vms/mover", {"vcpus": 2})  # a save on its new host
    h1.stop()
    h1.start()
    for h in (h1, h2):
        shown = h.api("GET", "/v1/projects/shared")
        assert shown["usage"]["vms"] == 1 and shown["vms"][0]["host"] == h2_id, shown
        assert shown["usage"]["disk_bytes"] == disk, shown
        assert [(v["volume"], v["host"]) for v in shown["volumes"]] == \
            [("default/mover-data", h2_id)], shown
    listed = h2.api("GET", "/v1/volumes?project=shared")["volumes"]
    assert [(v["key"], v["project"], v["project_of_vm"]) for v in listed
            if v["key"] == "default/mover-data"] == [("default/mover-data", "shared", False)], \
        listed
    err = h1.api("POST", "/v1/vms", {"name": "more", "memory_mib": 64, "project": "shared",
                                     "host": h1.name}, expect=409)
    assert err["error"]["code"] == "quota-exceeded", err
    h2.task_ok("DELETE", "/v1/vms/mover")
    err = h1.api("DELETE", "/v1/projects/shared", expect=409)  # the volume is in it still
    assert "volume 'default/mover-data'" in err["error"]["message"], err
    h2.task_ok("DELETE", "/v1/pools/default/volumes/mover-data")
    h2.api("DELETE", "/v1/projects/shared")

    # Volumes in a project, on each host's local pool: one disk quota.
    GIB = 1 << 30
    h1.api("POST", "/v1/projects", {"name": "vq", "quotas": {"disk_bytes": GIB}}, expect=201)
    go = threading.Barrier(2)
    answers = {}

    def create_volume(h):
        go.wait(timeout=30)
        answers[h.name] = h.request("POST", "/v1/pools/default/volumes", {
            "name": "vq1", "size_bytes": GIB, "project": "vq"})

    threads = [threading.Thread(target=create_volume, args=(h,)) for h in (h1, h2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    made = [n for n, (status, _) in answers.items() if status == 202]
    assert len(made) == 1, answers
    owner = h1 if made[0] == h1.name else h2
    other = h2 if owner is h1 else h1
    owner.wait_task(answers[made[0]][1]["task"])
    assert answers[other.name][1]["error"]["code"] == "quota-exceeded", answers
    shown = other.api("GET", "/v1/projects/vq")
    assert shown["usage"]["disk_bytes"] == GIB and \
        [v["volume"] for v in shown["volumes"]] == ["default/vq1"], shown
    # Its counts are the cluster's: the other host's volume, from either.
    for h in (h1, h2):
        listed, = [p for p in h.api("GET", "/v1/projects")["projects"] if p["name"] == "vq"]
        assert listed["counts"] == {"volumes": 1, "networks": 0}, listed
    err = other.api("DELETE", "/v1/projects/vq", expect=409)
    assert "volume 'default/vq1'" in err["error"]["message"], err
    owner.task_ok("DELETE", "/v1/pools/default/volumes/vq1")
    other.api("DELETE", "/v1/projects/vq")
    moves_race_attaches(c, faults)


def in_thread(fn):
    """fn() on a thread: (thread, its answer in a dict under "r")."""
    out = {}
    t = threading.Thread(target=lambda: out.update(r=fn()))
    t.start()
    return t, out


def held(faults, point, fn):
    """fn() run while hold point `point` (util/test-hold.h) is held, on a
    thread: returns (thread, answer) once a host waits there (fn's request,
    or the task it queued)."""
    hold = os.path.join(faults, point + ".hold")
    open(hold, "w").close()
    t, out = in_thread(fn)
    wait_until(lambda: os.path.exists(os.path.join(faults, point + ".held")) or
               (not t.is_alive() and out["r"][0] != 202), 60, what=f"{point} held: {out}")
    assert os.path.exists(os.path.join(faults, point + ".held")), out
    return t, out


def release(faults, point, t):
    os.unlink(os.path.join(faults, point + ".hold"))
    os.unlink(os.path.join(faults, point + ".held"))
    t.join(timeout=120)
    assert not t.is_alive()


def moves_race_attaches(c, faults):
    """A shared pool's volume moved to project mb through h1 while h2
    attaches it to a VM of project ma: one of the two fails cleanly (409),
    never both commit. The move held after it looked for the volume's users
    on every host (none yet): h2's attach finds it being moved (before, the
    attach committed and the move after it). The attach's save held after
    its check (the volume of no project): the move commits, and the save
    finds the volume's document moved on, checks again and refuses (before,
    it committed: a VM of ma with a volume of mb)."""
    h1, h2 = c.hosts
    path = os.path.join(c.shared_dir, "pool")
    os.makedirs(path)
    h1.api("POST", "/v1/pools", {"name": "sp", "path": path, "shared": True}, expect=201)
    wait_until(lambda: (pool_on(h2, "sp") or {}).get("reachable"), 30, what="sp on h2")
    for p in ("ma", "mb"):
        h1.api("POST", "/v1/projects", {"name": p}, expect=201)
    h2.task_ok("POST", "/v1/vms", {"name": "att", "memory_mib": 64, "project": "ma",
                                   "host": h2.name})
    for v in ("rv1", "rv2"):
        h1.task_ok("POST", "/v1/pools/sp/volumes", {"name": v, "size_bytes": MIB})

    def disks():
        return [d["volume"] for d in h2.api("GET", "/v1/vms/att")["disks"]]

    def project_of(v):
        return h2.api("GET", f"/v1/pools/sp/volumes/{v}")["project"]

    # The move first, held after its look for users; the attach meanwhile.
    t, move = held(faults, "project_move", lambda: h1.request(
        "PATCH", "/v1/pools/sp/volumes/rv1", {"project": "mb"}))
    try:
        status, doc = h2.request("POST", "/v1/vms/att/disks", {"volume": "sp/rv1"})
        if status == 202:  # refused by its save rather than its check
            doc = h2.wait_task(doc["task"])
            assert doc["state"] == "failed", doc
        else:
            assert status == 409, doc
        assert "being moved to another project" in doc["error"]["message"], doc
    finally:
        release(faults, "project_move", t)
    assert move["r"][0] == 200, move
    assert project_of("rv1") == "mb" and "sp/rv1" not in disks()

    # The attach's save first, held after its check; the move meanwhile.
    t, attach = held(faults, "vm_objects_checked", lambda: h2.request(
        "POST", "/v1/vms/att/disks", {"volume": "sp/rv2"}))
    try:
        status, doc = h1.request("PATCH", "/v1/pools/sp/volumes/rv2", {"project": "mb"})
        assert status == 200, doc
    finally:
        release(faults, "vm_objects_checked", t)
    status, doc = attach["r"]
    if status == 202:
        doc = h2.wait_task(doc["task"])
        assert doc["state"] == "failed", doc
    else:
        assert status == 409, doc
    assert "belongs to project 'mb'" in doc["error"]["message"], doc
    assert project_of("rv2") == "mb" and "sp/rv2" not in disks()
    # Nothing in between: the attach of a volume of no project works, and a
    # move of an attached volume is refused, naming the VM's host.
    h1.api("PATCH", "/v1/pools/sp/volumes/rv2", {"project": None})
    h2.task_ok("POST", "/v1/vms/att/disks", {"volume": "sp/rv2"})
    err = h1.api("PATCH", "/v1/pools/sp/volumes/rv2", {"project": "mb"}, expect=409)
    assert "attached to VM 'att' on host 'h2'" in err["error"]["message"], err


def test_join_merges_the_hosts_projects(cluster):
    """A standalone host's projects come into the cluster at its join: a
    project the cluster lacks with its quotas, VMs, volumes and networks;
    one the cluster has gains the host's objects, under the cluster's
    quotas, and a join they would exceed is refused naming the project and
    the quota (nothing copied, the host standalone)."""
    c = cluster(2, driver="fake", listen=False)
    h1, h2 = c.hosts
    h1.cli_json("cluster", "init", "--address", h1.address)
    h1.use_cluster_certs()
    MIB = 1 << 20
    h1.api("POST", "/v1/projects", {"name": "both", "quotas": {"disk_bytes": 512 * MIB}},
           expect=201)
    h1.task_ok("POST", "/v1/pools/default/volumes", {"name": "b1", "size_bytes": 256 * MIB,
                                                     "project": "both"})
    # h2, standalone: "both" too (its own quotas), and "solo" the cluster lacks.
    h2.api("POST", "/v1/projects", {"name": "both", "quotas": {"vms": 9}}, expect=201)
    h2.task_ok("POST", "/v1/pools/default/volumes", {"name": "b2", "size_bytes": 384 * MIB,
                                                     "project": "both"})
    h2.api("POST", "/v1/projects", {"name": "solo", "quotas": {"vms": 3}}, expect=201)
    h2.api("POST", "/v1/networks", {"name": "solo-net", "type": "isolated",
                                    "subnet": "10.203.0.0/24", "project": "solo"}, expect=201)
    h2.task_ok("POST", "/v1/pools/default/volumes", {"name": "s1", "size_bytes": 32 * MIB,
                                                     "project": "solo"})
    h2.task_ok("POST", "/v1/vms", {"name": "sv", "memory_mib": 64, "project": "solo",
                                   "networks": ["solo-net"]})
    h2_id = h2.api("GET", "/v1/host")["id"]

    def join(check):
        tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
        return h2.cli("cluster", "join", f"{h1.address}:{h1.port}", "--token", tok["token"],
                      "--address", h2.address, check=check)

    # 256 MiB in the cluster + 384 MiB of h2's > 512 MiB: refused, naming it.
    p = join(check=False)
    assert p.returncode != 0, p.stdout
    assert "project 'both'" in p.stderr and "quota disk_bytes" in p.stderr, p.stderr
    assert h2.api("GET", "/v1/cluster")["cluster"] is None
    assert "solo" not in [x["name"] for x in h1.api("GET", "/v1/projects")["projects"]]
    # Room made in the cluster: the join goes through and merges.
    h1.task_ok("DELETE", "/v1/pools/default/volumes/b1")
    join(check=True)
    h2.use_cluster_certs()
    from vireo_harness import wait_until
    wait_until(lambda: sorted(x["name"] for x in h1.api("GET", "/v1/hosts")["hosts"]
                              if x["state"] == "online") == sorted([h1.name, h2.name]), 60,
               what="h2 online")
    for h in (h1, h2):
        both = h.api("GET", "/v1/projects/both")
        assert both["quotas"] == {"disk_bytes": 512 * MIB}, both  # the cluster's
        assert both["usage"]["disk_bytes"] == 384 * MIB, both
        assert [(v["volume"], v["host"]) for v in both["volumes"]] == \
            [("default/b2", h2_id)], both
        solo = h.api("GET", "/v1/projects/solo")
        assert solo["quotas"] == {"vms": 3}, solo  # came with h2
        assert [v["name"] for v in solo["vms"]] == ["sv"], solo
        assert solo["usage"]["vms"] == 1 and solo["usage"]["disk_bytes"] > 32 * MIB, solo
        assert [v["volume"] for v in solo["volumes"]] == ["default/s1"], solo
        assert [n["network"] for n in solo["networks"]] == ["solo-net"], solo
    assert h2.api("GET", "/v1/networks/solo-net")["project"] == "solo"
    assert h2.api("GET", "/v1/pools/default/volumes/b2")["project"] == "both"
    # The merged use counts: b2's 384 MiB leave 128 MiB in "both".
    err = h1.api("POST", "/v1/pools/default/volumes", {"name": "b3", "size_bytes": 256 * MIB,
                                                       "project": "both"}, expect=409)
    assert err["error"]["code"] == "quota-exceeded", err
    err = h1.api("DELETE", "/v1/projects/solo", expect=409)
    assert "sv" in err["error"]["message"], err


def test_placement_and_drs_keep_to_the_projects_networks(cluster, tmp_path, monkeypatch):
    faults = str(tmp_path / "faults")  # hold points (fake driver, host records)
    os.makedirs(faults)
    monkeypatch.setenv("VIREO_FAKE_FAULTS", faults)
    c = cluster(2, driver="fake", listen=False)
    form(c)
    h1, h2 = c.hosts
    for p in ("pa", "pb"):
        h1.api("POST", "/v1/projects", {"name": p}, expect=201)
    # Each host's own "lan" (vxlan networks stay the host's), of another project.
    for h, project, vni in ((h1, "pa", 4311), (h2, "pb", 4312)):
        h.api("POST", "/v1/networks", {"name": "lan", "type": "vxlan", "vni": vni,
                                        "remotes": ["127.0.0.9"], "project": project},
              expect=201)
    # Unpinned creates, through either host: each lands where its lan is
    # its project's (spread alone would alternate; the other host refused).
    # Six of each (a host here gives out 4 vCPUs per CPU: 2 CPUs, 8).
    for i in range(6):
        for project, home in (("pa", h1), ("pb", h2)):
            via = (h1, h2)[i % 2]
            doc = via.api("POST", "/v1/vms", {"name": f"{project}{i}", "memory_mib": 64,
                                               "project": project, "networks": ["lan"]},
                          expect=202)
            assert doc["host"]["name"] == home.name, (project, i, doc)
            home.wait_task(doc["task"])
    # Of no project ("default"): neither lan is its.
    err = h1.api("POST", "/v1/vms", {"name": "dx", "memory_mib": 64, "networks": ["lan"]},
                 expect=400)["error"]["message"]
    assert "network 'lan' belongs to another project than 'default' on every host" in err, err
    # A network no host has: one 400 naming it (not each host's reason).
    err = h2.api("POST", "/v1/vms", {"name": "nx", "memory_mib": 64, "project": "pa",
                                     "networks": ["nowhere"]}, expect=400)["error"]["message"]
    assert err == ("networks: no host has a network 'nowhere' (or it is in error wherever "
                   "it is; see: vireo network list)"), err

    # DRS: pa's VMs busy on h1, h2 idle; h2's lan is pb's, so no move of
    # them is proposed (it would be refused by the migration check).
    for i in range(3):
        h1.task_ok("POST", f"/v1/vms/pa{i}/start")
        set_load(h1, f"pa{i}", 0.25, 0.75, mem_mib=20, mem_source="guest")
    h1.api("PUT", "/v1/cluster/drs", {"mode": "manual", "level": 5})
    def no_host():
        return [e for e in decisions(h1, "no move")
                if "with no host that can take them" in e.get("message", "")]
    wait_until(lambda: no_host() or a_recommendation(h1, h1.name), 120, interval=1.0,
               what="DRS deciding on pa's VMs")
    assert a_recommendation(h1, h1.name) is None, a_recommendation(h1, h1.name)
    h1.api("PUT", "/v1/cluster/drs", {"mode": "off"})

    # A network made, then at once a VM on it (unpinned): the record that
    # lists it is rewritten before the network's answer; the hosts' own
    # refresh is held meanwhile (it would come a moment later).
    hold = os.path.join(faults, "host_record_refresh.hold")
    open(hold, "w").close()
    try:
        for i in range(5):
            h2.api("POST", "/v1/networks", {"name": f"new{i}", "type": "vxlan",
                                            "vni": 4320 + i, "remotes": ["127.0.0.9"]},
                   expect=201)
            doc = h1.api("POST", "/v1/vms", {"name": f"on-new{i}", "memory_mib": 64,
                                              "networks": [f"new{i}"]}, expect=202)
            assert doc["host"]["name"] == h2.name, doc
            h2.wait_task(doc["task"])
            h2.task_ok("DELETE", f"/v1/vms/on-new{i}")  # h2 has room for 2 more
    finally:
        os.unlink(hold)
