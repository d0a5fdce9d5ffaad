"""A project's quota across the hosts of a cluster (fake driver, two hosts
formed with vireo cluster init/join): the project and its usage are
documents of the whole cluster (etcd), so creates racing for the last slot
through two hosts, each making its VM on itself, make exactly one VM, and
each host shows the other's VM in the project's usage; a VM moved to the
other host keeps its usage (its record follows it), also its disk figure,
which its spec does not hold, through a save on the new host; volumes made
in a project on each host count against its disk quota across hosts
(racing creates on two hosts make one volume) and keep a project deleted
through the other host from going. (Here the creates
may meet one after the other; the tight interleaving, both checked before
either commits, is pinned by tests/unit/test-relations.c on the store.)"""

import threading

from test_cluster_placement import form


def test_quota_holds_across_hosts(cluster):
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
    err = other.api("DELETE", "/v1/projects/vq", expect=409)
    assert "volume 'default/vq1'" in err["error"]["message"], err
    owner.task_ok("DELETE", "/v1/pools/default/volumes/vq1")
    other.api("DELETE", "/v1/projects/vq")
