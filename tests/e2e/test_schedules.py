"""System tests of scheduled snapshots and backups (docs/schedules.md) on
the fake driver: time does not pass in real time. vireod runs with the
test-only --schedule-clock-file, so the scheduler's "now" is what the test
writes (rounds every 0.2 s), in TZ=UTC: due times by cron and by window,
retention that leaves manual snapshots alone, a missed run taken once
within its window (also across a vireod restart) and skipped after it, the
requester "schedule:NAME" on every task, run-now raced against itself and
the runner (each request exactly one run), and the refusals of bad input.
The disks are real qcow2 files (qemu-img snapshot, qemu-storage-daemon)."""

import calendar
import json
import subprocess
import concurrent.futures
import os
import time

import pytest

from vireo_harness import Daemon, wait_until


def utc(y, mo, d, h=0, mi=0):
    return calendar.timegm((y, mo, d, h, mi, 0))


class Clock:
    def __init__(self, path, start):
        self.path = path
        self.set(start)

    def set(self, t):
        self.now = t
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{t}\n")
        os.replace(tmp, self.path)


def clocked_daemon(driver, start):
    """A vireod (TZ=UTC) whose schedules follow d.clock; yields it, then cleans up."""
    clock_path = os.path.join("/tmp", f"vireo-sched-clock-{driver}-{os.getpid()}")
    clock = Clock(clock_path, start)
    try:
        d = Daemon(driver=driver, env={"TZ": "UTC"}, args=["--schedule-clock-file", clock_path])
        d.clock = clock
        try:
            yield d
        finally:
            d.cleanup()
    finally:
        os.unlink(clock_path)


@pytest.fixture(scope="module")
def sched():
    yield from clocked_daemon("fake", utc(2026, 3, 1))


def snapshots(d, vm):
    return sorted(s["name"] for s in d.api("GET", f"/v1/vms/{vm}/snapshots")["snapshots"])


def schedule_tasks(d, name, kind=None):
    return [t for t in d.api("GET", "/v1/tasks")["tasks"]
            if (t.get("requested_by") or {}).get("who") == f"schedule:{name}"
            and (kind is None or t["kind"] == kind)]


def settled(d, name):
    """Every task of the schedule has ended."""
    return all(t["state"] in ("succeeded", "failed", "cancelled")
               for t in schedule_tasks(d, name))


def test_bad_input_is_refused_naming_the_field(sched):
    d = sched
    d.cli("vm", "create", "badin")
    cases = [
        ({"at": "61 * * * *"}, 400, "minute '61'"),
        ({"at": "0 0 30 2 *"}, 400, "never due"),
        ({"at": "* * * *"}, 400, "4 fields"),
        ({"every": "hourly"}, 400, "daily or weekly"),
        ({"every": "daily", "window": "25:00-26:00"}, 400, "window"),
        ({"at": "0 2 * * *", "window": "01:00-02:00"}, 400, "only with every"),
        ({"at": "0 2 * * *", "every": "daily"}, 400, "one of at"),
        ({"every": "daily", "keep_last": -1}, 400, "keep_last"),
        ({"every": "daily", "pool": "backup"}, 400, "only for action backup"),
        ({"every": "daily", "unknown": 1}, 400, "unknown"),
    ]
    for extra, status, words in cases:
        body = {"name": "bad", "action": "snapshot", "vm": "badin", **extra}
        got, doc = d.request("POST", "/v1/schedules", body)
        assert got == status and words in doc["error"]["message"], (extra, got, doc)
    for body, status, words in [
        ({"name": "bad", "action": "snapshot", "vm": "nosuchvm", "every": "daily"}, 404,
         "'nosuchvm' does not exist"),
        ({"name": "bad", "action": "snapshot", "group": "nogroup", "every": "daily"}, 404,
         "group 'nogroup'"),
        ({"name": "bad", "action": "snapshot", "project": "p", "every": "daily"}, 400,
         "projects are not available"),
        ({"name": "bad", "action": "snapshot", "vm": "badin", "all": True, "every": "daily"},
         400, "exactly one"),
        ({"name": "x" * 33, "action": "snapshot", "vm": "badin", "every": "daily"}, 400,
         "name"),
        ({"name": "../etc", "action": "snapshot", "vm": "badin", "every": "daily"}, 400,
         "name"),
        ({"name": "bad", "action": "reboot", "vm": "badin", "every": "daily"}, 400, "action"),
    ]:
        got, doc = d.request("POST", "/v1/schedules", body)
        assert got == status and words in doc["error"]["message"], (body, got, doc)
    assert d.api("GET", "/v1/schedules")["schedules"] == []  # nothing half-made
    p = d.cli("schedule", "create", "bad", "--vm", "badin", "--action", "snapshot",
              "--at", "0 25 * * *", check=False)
    assert p.returncode == 1 and "hour '25'" in p.stderr
    p = d.cli("schedule", "create", "bad", "--vm", "badin", "--action", "snapshot", check=False)
    assert p.returncode == 2 and "--at CRON or --every" in p.stderr
    p = d.cli("schedule", "show", "nosuch", check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr
    # A change is checked whole too, and a failed one changes nothing.
    d.cli("schedule", "create", "good", "--vm", "badin", "--action", "snapshot",
          "--every", "daily", "--disabled")
    got, doc = d.request("PATCH", "/v1/schedules/good", {"at": "bad cron"})
    assert got == 400
    got, doc = d.request("PATCH", "/v1/schedules/good", {"action": "backup"})
    assert got == 400 and "cannot be changed" in doc["error"]["message"]
    shown = d.api("GET", "/v1/schedules/good")
    assert shown["every"] == "daily" and "at" not in shown and shown["enabled"] is False
    d.cli("schedule", "set", "good", "--at", "15 3 * * *", "--keep-last", "2")
    shown = d.api("GET", "/v1/schedules/good")
    assert shown["at"] == "15 3 * * *" and "every" not in shown and shown["keep_last"] == 2
    d.cli("schedule", "delete", "good")
    d.cli("vm", "delete", "badin")


def test_cron_runs_and_retention_spares_manual_snapshots(sched):
    d = sched
    d.clock.set(utc(2026, 3, 2, 0, 30))
    d.cli("vm", "create", "hv")
    d.task_ok("POST", "/v1/vms/hv/snapshots", {"name": "manual"})
    d.cli("schedule", "create", "hourly", "--vm", "hv", "--action", "snapshot",
          "--at", "0 * * * *", "--keep-last", "2")
    shown = d.api("GET", "/v1/schedules/hourly")
    assert shown["next_due"] == "2026-03-02T01:00:00Z"
    made = []
    for hour in range(1, 5):
        d.clock.set(utc(2026, 3, 2, hour, 0) + 5)
        name = f"hourly-20260302-{hour:02d}0000"
        made.append(name)
        wait_until(lambda: name in snapshots(d, "hv") and settled(d, "hourly"), 30,
                   what=f"snapshot {name}")
    wait_until(lambda: snapshots(d, "hv") == sorted(["manual"] + made[-2:]) and
               settled(d, "hourly"), 30, what="retention to keep the newest 2")
    created = schedule_tasks(d, "hourly", "snapshot-create")
    deleted = schedule_tasks(d, "hourly", "snapshot-delete")
    assert len(created) == 4 and all(t["state"] == "succeeded" for t in created)
    assert len(deleted) == 2 and all(t["state"] == "succeeded" for t in deleted)
    # Nothing runs again while the clock stays before the next due time.
    d.clock.set(d.clock.now + 600)
    time.sleep(1)  # five rounds of the runner
    assert len(schedule_tasks(d, "hourly", "snapshot-create")) == 4
    wait_until(lambda: len(d.api("GET", "/v1/schedules/hourly")["made"]) == 2, 30,
               what="the records of what was pruned to go")
    shown = d.cli_json("schedule", "show", "hourly")
    run = shown["runs"][0]
    assert run["vm"] == "hv" and run["last_run"]["due"] == "2026-03-02T04:00:00Z"
    assert run["last_run"]["trigger"] == "schedule"
    assert sorted(m["name"] for m in shown["made"]) == made[-2:]
    out = d.cli("task", "show", created[0]["id"]).stdout
    assert "schedule:hourly" in out
    d.cli("schedule", "delete", "hourly")
    assert snapshots(d, "hv") == sorted(["manual"] + made[-2:])  # what it made stays


def test_missed_runs_run_once_in_the_window_then_skip(sched):
    d = sched
    d.clock.set(utc(2026, 4, 1, 12, 0))
    d.cli("vm", "create", "dv")
    d.cli("schedule", "create", "nightly", "--vm", "dv", "--action", "snapshot",
          "--every", "daily", "--window", "02:00-04:00", "--keep-daily", "30")
    # vireod down for three nights: back at 03:10 on the fourth, inside its window.
    d.stop()
    d.clock.set(utc(2026, 4, 5, 3, 10))
    d.start()
    wait_until(lambda: "nightly-20260405-020000" in snapshots(d, "dv") and
               settled(d, "nightly"), 30, what="the missed run")
    run = d.api("GET", "/v1/schedules/nightly")["runs"][0]
    assert run["last_skip"]["due"] == "2026-04-02T02:00:00Z"
    assert "not running" in run["last_skip"]["reason"]
    assert len(schedule_tasks(d, "nightly", "snapshot-create")) == 1  # not four
    # Back after the window (05:00 on the 7th): nothing runs, the skip is recorded.
    d.clock.set(utc(2026, 4, 7, 5, 0))
    wait_until(lambda: d.api("GET", "/v1/schedules/nightly")["runs"][0]["last_skip"]["due"]
               == "2026-04-06T02:00:00Z", 30, what="the skip to be recorded")
    assert len(schedule_tasks(d, "nightly", "snapshot-create")) == 1
    # The next night runs again on time.
    d.clock.set(utc(2026, 4, 8, 2, 0))
    wait_until(lambda: "nightly-20260408-020000" in snapshots(d, "dv"), 30,
               what="the next night's run")
    assert len(schedule_tasks(d, "nightly", "snapshot-create")) == 2
    # Disabled for three nights, enabled again inside a window: due times
    # while it was off neither run nor count as skipped.
    d.cli("schedule", "set", "nightly", "--disabled")
    d.clock.set(utc(2026, 4, 11, 3, 0))
    time.sleep(1)  # five rounds
    d.cli("schedule", "set", "nightly", "--enabled")
    time.sleep(1)
    assert len(schedule_tasks(d, "nightly", "snapshot-create")) == 2
    run = d.api("GET", "/v1/schedules/nightly")["runs"][0]
    assert run["last_skip"]["due"] == "2026-04-06T02:00:00Z"
    d.cli("schedule", "delete", "nightly")


def test_run_now_races_run_each_request_once(sched):
    """Run-now requests race each other (412 for the losers of the
    schedule's revision) and the runner thread (both try to claim the same
    request: one wins the run document's revision). Every accepted request
    is run at most once and at least one run happens per round; a run
    claimed twice would show as a snapshot name taken (an error in the run
    record) or as two tasks for one -rN."""
    d = sched
    d.clock.set(utc(2026, 5, 1, 12, 0))
    d.cli("vm", "create", "rv")
    d.cli("schedule", "create", "race", "--vm", "rv", "--action", "snapshot",
          "--at", "0 0 1 1 *", "--disabled")
    answers = []
    for _ in range(3):
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers += list(pool.map(lambda _: d.request("POST", "/v1/schedules/race/run"),
                                     range(4)))
        wait_until(lambda: settled(d, "race"), 30, what="the runs")
    assert all(status in (202, 412) for status, _ in answers), answers
    bumps = max(doc["run_now"] for status, doc in answers if status == 202)
    wait_until(lambda: d.api("GET", "/v1/schedules/race")["runs"][0]["run_now"] == bumps, 30,
               what="every run-now handled")
    wait_until(lambda: settled(d, "race"), 30, what="the runs")
    run = d.api("GET", "/v1/schedules/race")["runs"][0]
    assert "error" not in run["last_run"], run
    tasks = schedule_tasks(d, "race", "snapshot-create")
    assert all(t["state"] == "succeeded" for t in tasks), tasks
    names = snapshots(d, "rv")
    suffixes = [n.rsplit("-r", 1)[1] for n in names]
    assert len(set(suffixes)) == len(names) == len(tasks)
    assert 3 <= len(tasks) <= bumps
    p = d.cli("schedule", "run-now", "race")
    assert "rv: snapshot-create done" in p.stdout
    assert len(snapshots(d, "rv")) == len(tasks) + 1
    d.cli("schedule", "delete", "race")


def test_run_now_is_not_taken_by_a_vm_made_after_it(sched):
    """A run-now asked before a VM existed is not run for that VM when the
    schedule selects it later (a VM the schedule had no run record of took
    every old raise as a new one); a run-now asked after it is."""
    d = sched
    d.clock.set(utc(2026, 5, 2, 12, 0))
    d.cli("vm", "create", "early")
    d.cli("schedule", "create", "late", "--vm", "early", "--action", "snapshot",
          "--at", "0 0 1 1 *", "--disabled")
    d.cli("schedule", "run-now", "late")
    assert len(snapshots(d, "early")) == 1
    d.cli("vm", "create", "latevm")
    d.cli("schedule", "set", "late", "--vm", "latevm")
    time.sleep(1)  # five rounds of the runner
    assert snapshots(d, "latevm") == [] and len(schedule_tasks(d, "late")) == 1
    d.cli("schedule", "run-now", "late")
    wait_until(lambda: len(snapshots(d, "latevm")) == 1 and settled(d, "late"), 30,
               what="the run-now asked after the VM was made")
    assert snapshots(d, "latevm")[0].endswith("-r2")
    d.cli("schedule", "delete", "late")


def test_clock_put_back_after_running_ahead(sched):
    """A run claimed while the clock was years ahead (set wrong, then put
    right) does not stop the schedule until that time comes again."""
    d = sched
    d.clock.set(utc(2026, 6, 1, 0, 30))
    d.cli("vm", "create", "cb")
    d.cli("schedule", "create", "cback", "--vm", "cb", "--action", "snapshot",
          "--at", "0 * * * *")
    d.clock.set(utc(2030, 1, 1, 0, 0) + 5)
    wait_until(lambda: snapshots(d, "cb") == ["cback-20300101-000000"] and
               settled(d, "cback"), 30, what="the run under the wrong clock")
    # Put back: as after a stop, the newest due time in the grace (1 h) runs.
    d.clock.set(utc(2026, 6, 1, 1, 30))
    wait_until(lambda: "cback-20260601-010000" in snapshots(d, "cb") and
               settled(d, "cback"), 30, what="the run after the clock was put back")
    d.clock.set(utc(2026, 6, 1, 2, 0) + 5)
    wait_until(lambda: "cback-20260601-020000" in snapshots(d, "cb") and
               settled(d, "cback"), 30, what="the next due time")
    assert len(schedule_tasks(d, "cback", "snapshot-create")) == 3
    d.cli("schedule", "delete", "cback")


def test_group_backups_with_keep_last(sched):
    d = sched
    d.clock.set(utc(2026, 6, 1, 0, 0))
    d.cli("group", "create", "nightly", "--policy", "together")
    d.cli("vm", "create", "gv1", "--group", "nightly")
    d.cli("vm", "create", "outside")
    d.cli("schedule", "create", "gback", "--group", "nightly", "--action", "backup",
          "--every", "daily", "--window", "01:00-02:00", "--keep-last", "1")
    for day in (1, 2):
        d.clock.set(utc(2026, 6, day, 1, 0))
        wait_until(lambda: len(schedule_tasks(d, "gback", "backup-create")) == day and
                   settled(d, "gback"), 60, what=f"backup of day {day}")
    wait_until(lambda: len(d.api("GET", "/v1/backups?vm=gv1")) == 1 and settled(d, "gback"),
               30, what="retention to keep 1 backup")
    assert d.api("GET", "/v1/backups?vm=outside") == []
    kept = d.api("GET", "/v1/backups?vm=gv1")[0]
    newest = [t for t in schedule_tasks(d, "gback", "backup-create")
              if t["result"]["backup"] == kept["id"]]
    assert newest and newest[0]["created_at"] >= max(
        t["created_at"] for t in schedule_tasks(d, "gback", "backup-create"))
    assert [t["state"] for t in schedule_tasks(d, "gback", "backup-delete")] == ["succeeded"]
    d.cli("schedule", "delete", "gback")


@pytest.fixture(scope="module")
def real_sched():
    yield from clocked_daemon("qemu", utc(2026, 7, 1))


def disk_snapshots(path):
    """The internal snapshots qemu-img reads in the qcow2 file (-U: QEMU has it open)."""
    out = subprocess.run(["qemu-img", "info", "-U", "--output", "json", path],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return sorted(s["name"] for s in json.loads(out).get("snapshots", []))


def test_real_guest_scheduled_snapshot_made_and_pruned(real_sched):
    """One booted TCG guest: two hourly due times make two snapshots of the
    running VM in its qcow2 disk (QEMU's snapshot-save), and keep-last 1
    deletes the first from the disk again."""
    d = real_sched
    d.clock.set(utc(2026, 7, 1, 0, 30))
    d.create_and_boot("rg", memory="128M")
    disk = d.vm("rg")["disks"][0]["path"]
    d.cli("schedule", "create", "hourly", "--vm", "rg", "--action", "snapshot",
          "--at", "0 * * * *", "--keep-last", "1")
    d.clock.set(utc(2026, 7, 1, 1, 0))
    wait_until(lambda: disk_snapshots(disk) == ["hourly-20260701-010000"] and
               settled(d, "hourly"), 120, interval=0.5, what="the first scheduled snapshot")
    d.clock.set(utc(2026, 7, 1, 2, 0))
    wait_until(lambda: disk_snapshots(disk) == ["hourly-20260701-020000"] and
               settled(d, "hourly"), 120, interval=0.5, what="the second one, the first pruned")
    assert snapshots(d, "rg") == ["hourly-20260701-020000"]
    assert d.vm("rg")["state"] == "running"
    kinds = sorted(t["kind"] for t in schedule_tasks(d, "hourly"))
    assert kinds == ["snapshot-create", "snapshot-create", "snapshot-delete"]
    d.remember_qemu_pids()
