"""A project's quota across the hosts of a cluster (fake driver, two hosts
formed with vireo cluster init/join): the project and its usage are
documents of the whole cluster (etcd), so creates racing for the last slot
through two hosts, each making its VM on itself, make exactly one VM, and
each host shows the other's VM in the project's usage; a VM moved to the
other host keeps its usage (its record follows it), also its disk figure,
which its spec does not hold, through a save on the new host; volumes made
in a project on each host count against its disk quota across hosts
(racing creates on two hosts make one volume) and keep a project deleted
through the other host from going; a shared volume's move to another
project on one host and its attach to a VM of another project on the
other never both commit, whichever goes first. (Here the creates
may meet one after the other; the tight interleaving, both checked before
either commits, is pinned by tests/unit/test-relations.c on the store.)"""

import os
import threading

from test_cluster_placement import form
from test_cluster_shared_pools import pool_on
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
    disk = h1.api("GET", "/v1/projects/shared")["usage"]["disk_bytes"]
    assert disk > 0
    h2.cli("vm", "move", "mover", "--to", h2.name, timeout=300)
    h2.api("PATCH", "/v1/vms/mover", {"vcpus": 2})  # a save on its new host
    h2_id = h2.api("GET", "/v1/host")["id"]
    h1.stop()
    h1.start()
    for h in (h1, h2):
        shown = h.api("GET", "/v1/projects/shared")
        assert shown["usage"]["vms"] == 1 and shown["vms"][0]["host"] == h2_id, shown
        assert shown["usage"]["disk_bytes"] == disk, shown
    err = h1.api("POST", "/v1/vms", {"name": "more", "memory_mib": 64, "project": "shared",
                                     "host": h1.name}, expect=409)
    assert err["error"]["code"] == "quota-exceeded", err
    h2.task_ok("DELETE", "/v1/vms/mover")
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
