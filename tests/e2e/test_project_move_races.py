"""A shared volume's move to another project raced, on two fake-driver hosts,
against what another host does to the volume or its VM meanwhile
(docs/projects.md, "How it holds under concurrency"; hold points of
util/test-hold.h park one side while the other runs):

* a live migration of the volume's VM from the host the move has not
  looked at yet (h2) to the one it has (h1): the migration's switch finds
  the move's mark and the VM stays on h2, so the move finds it there
  (before: the switch committed, the move found no VM and committed, and a
  VM of one project used another project's volume);
* a grow on h2 that read the volume's project before the move committed:
  it counts in the project the volume went to (before: it wrote the old
  project back, undoing the move);
* a grow on h2 committed while the move is under way: the move keeps the
  grown figure (before: it wrote the size it read at its start);
* a delete on h2 while the move is under way: the move answers 404 and
  leaves no records of the volume (before: it made them for a volume that
  is gone, counted in the project for ever)."""

import os

from test_cluster_projects import held, release
from test_migrate import create_on, form, shared_pool

MIB = 1 << 20


def project(h, name):
    return h.api("GET", f"/v1/projects/{name}")


def volumes_of(h, name):
    return [v["volume"] for v in project(h, name)["volumes"]]


def test_project_moves_race_other_hosts(cluster, tmp_path, monkeypatch):
    faults = str(tmp_path / "faults")
    os.makedirs(faults)
    monkeypatch.setenv("VIREO_FAKE_FAULTS", faults)
    c = cluster(2, driver="fake", listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c, "sp")
    for p in ("ma", "mb"):
        h1.api("POST", "/v1/projects", {"name": p}, expect=201)

    # 1. The move looked at h1 (no VM there), then the VM migrates h2 -> h1.
    create_on(h2, "mig", pool="sp", memory=64, blank=True, disk_size_bytes=16 * MIB)
    h1.task_ok("POST", "/v1/pools/sp/volumes", {"name": "mv1", "size_bytes": MIB})
    h2.task_ok("POST", "/v1/vms/mig/disks", {"volume": "sp/mv1"})
    h2.task_ok("POST", "/v1/vms/mig/start")
    t, move = held(faults, "project_move_looked_here", lambda: h1.request(
        "PATCH", "/v1/pools/sp/volumes/mv1", {"project": "mb"}))
    try:
        doc = h2.api("POST", "/v1/vms/mig/migrate", {"to": "h1"}, expect=202)
        task = h2.wait_task(doc["task"], timeout=120)
        assert task["state"] == "failed", task
        assert "volume 'sp/mv1' is being moved to another project" in \
            task["error"]["message"], task
    finally:
        release(faults, "project_move_looked_here", t)
    status, doc = move["r"]
    assert status == 409, doc
    assert "attached to VM 'mig' on host 'h2'" in doc["error"]["message"], doc
    assert h1.api("GET", "/v1/pools/sp/volumes/mv1")["project"] is None
    vm = h2.vm("mig")
    assert vm["state"] == "running", vm
    # Nothing in between: the migration goes through.
    task = h2.task_ok("POST", "/v1/vms/mig/migrate", {"to": "h1"})
    assert h1.vm("mig")["state"] == "running", task

    # 2. A grow on h2 read the volume's project (ma), then the move to mb
    # commits on h1: the grow counts in mb, the volume stays in mb.
    h1.task_ok("POST", "/v1/pools/sp/volumes", {"name": "gv", "size_bytes": MIB,
                                                "project": "ma"})
    t, grow = held(faults, "project_grow_read", lambda: h2.request(
        "POST", "/v1/pools/sp/volumes/gv/resize", {"size_bytes": 3 * MIB}))
    try:
        h1.api("PATCH", "/v1/pools/sp/volumes/gv", {"project": "mb"})
    finally:
        release(faults, "project_grow_read", t)
    status, doc = grow["r"]
    assert status == 202, doc
    assert h2.wait_task(doc["task"])["state"] == "succeeded"
    for h in (h1, h2):
        assert h.api("GET", "/v1/pools/sp/volumes/gv")["project"] == "mb"
        assert project(h, "mb")["usage"]["disk_bytes"] == 3 * MIB, project(h, "mb")
        assert project(h, "ma")["usage"]["disk_bytes"] == 0, project(h, "ma")

    # 3. The move back to ma held before its commit; a grow on h2 commits
    # meanwhile (in mb): the move keeps the grown figure.
    t, move = held(faults, "project_move", lambda: h1.request(
        "PATCH", "/v1/pools/sp/volumes/gv", {"project": "ma"}))
    try:
        h2.task_ok("POST", "/v1/pools/sp/volumes/gv/resize", {"size_bytes": 5 * MIB})
    finally:
        release(faults, "project_move", t)
    assert move["r"][0] == 200, move
    assert project(h2, "ma")["usage"]["disk_bytes"] == 5 * MIB, project(h2, "ma")
    assert project(h2, "mb")["usage"]["disk_bytes"] == 0, project(h2, "mb")
    h2.task_ok("DELETE", "/v1/pools/sp/volumes/gv")

    # 4. The move held before its commit; h2 deletes the volume meanwhile.
    h1.task_ok("POST", "/v1/pools/sp/volumes", {"name": "dv", "size_bytes": MIB,
                                                "project": "ma"})
    t, move = held(faults, "project_move", lambda: h1.request(
        "PATCH", "/v1/pools/sp/volumes/dv", {"project": "mb"}))
    try:
        h2.task_ok("DELETE", "/v1/pools/sp/volumes/dv")
    finally:
        release(faults, "project_move", t)
    status, doc = move["r"]
    assert status == 404, doc
    assert "was deleted during its move" in doc["error"]["message"], doc
    for p in ("ma", "mb"):
        shown = project(h1, p)
        assert shown["volumes"] == [] and shown["usage"]["disk_bytes"] == 0, shown
    h1.api("DELETE", "/v1/projects/mb")  # nothing left in it
