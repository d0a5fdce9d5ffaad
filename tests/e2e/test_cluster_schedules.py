"""Schedules in a cluster of two hosts (fake driver; the schedules' clock
is one file both vireods read, --schedule-clock-file, in TZ=UTC): a due
time of a schedule of every VM runs once per VM, on the host that has the
VM, never on both; a run-now asked of one host runs its VM at once and the
other host's VM at that host's next round, each once."""

import os
import time

import pytest

from test_cluster_placement import by_name, create, form, wait_created
from test_schedules import Clock, utc
from vireo_harness import wait_until


@pytest.fixture
def clock():
    c = Clock(os.path.join("/tmp", f"vireo-sched-clock-cluster-{os.getpid()}"), utc(2026, 8, 1))
    try:
        yield c
    finally:
        os.unlink(c.path)


def tasks_of(h, schedule):
    """The schedule's tasks of the whole cluster, as h lists them."""
    return [t for t in h.api("GET", "/v1/tasks")["tasks"]
            if (t.get("requested_by") or {}).get("who") == f"schedule:{schedule}"]


def test_each_vm_runs_once_on_its_host(cluster, clock, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")  # the vireods' zone (they inherit it)
    c = cluster(2, driver="fake", listen=False,
                extra_args=["--schedule-clock-file", clock.path])
    form(c)
    h1, h2 = c.hosts
    for h in c.hosts:
        wait_created(c, create(h1, {"name": f"vm-{h.name}", "memory_mib": 64, "host": h.name}))
    h1.cli("schedule", "create", "every", "--all", "--action", "snapshot",
           "--at", "0 * * * *", "--keep-last", "5")
    clock.set(utc(2026, 8, 1, 1, 0))

    def both_done():
        ts = tasks_of(h2, "every")
        return len(ts) == 2 and all(t["state"] == "succeeded" for t in ts) and ts
    ts = wait_until(both_done, 30, what="one snapshot per VM")
    assert sorted((t["host"], t["target"]) for t in ts) == [("h1", "vm-h1"), ("h2", "vm-h2")]
    runs = {r["vm"]: r for r in h2.api("GET", "/v1/schedules/every")["runs"]}
    assert {vm: r["last_run"]["host"] for vm, r in runs.items()} == {"vm-h1": "h1",
                                                                     "vm-h2": "h2"}
    # Rounds go on on both hosts: nothing runs twice for that due time.
    clock.set(utc(2026, 8, 1, 1, 30))
    time.sleep(1)  # five rounds of each host's runner
    assert len(tasks_of(h1, "every")) == 2
    # Run-now through h2: h2's VM at once (in the answer), h1's at h1's round.
    doc = h2.api("POST", "/v1/schedules/every/run", expect=202)
    assert [t["target"] for t in doc["tasks"]] == ["vm-h2"]
    wait_until(lambda: len(tasks_of(h1, "every")) == 4 and
               all(t["state"] == "succeeded" for t in tasks_of(h1, "every")), 30,
               what="the run-now on both hosts")
    for h in c.hosts:
        vm = f"vm-{h.name}"
        names = [s["name"] for s in by_name(c, h.name).api(
            "GET", f"/v1/vms/{vm}/snapshots")["snapshots"]]
        assert sorted(names) == ["every-20260801-010000", "every-20260801-013000-r1"], names
