"""System tests of snapshots on real TCG guests: memory snapshots of a
running VM (reverted after a backup), disk-only snapshots of a stopped one,
a snapshot tree that survives deleting its middle, and a pool too small
for the memory state.
The memory-snapshot tests of a running VM share one booted guest (a TCG
boot costs more CPU than such a test, and make check is CPU-bound); each
deletes the snapshots it made, so none sees another's."""

import os
import subprocess

import pytest

from vireo_harness import BOOT_MARKER, Daemon


def write(daemon, vm, text):
    daemon.guest(vm, f"echo {text} > /root/note; sync")


def read(daemon, vm):
    return daemon.guest(vm, "cat /root/note").strip()


def test_disk_snapshot_of_a_stopped_vm(daemon):
    daemon.create_and_boot("cold", memory="128M")
    write(daemon, "cold", "before")
    daemon.cli("vm", "stop", "cold")
    daemon.task_ok("POST", "/v1/vms/cold/snapshots", {"name": "d1"})
    daemon.cli("vm", "start", "cold")
    daemon.wait_console("cold", BOOT_MARKER, count=2)
    write(daemon, "cold", "after")
    daemon.cli("vm", "stop", "cold")
    daemon.task_ok("POST", "/v1/vms/cold/snapshots/d1/revert", {})
    daemon.cli("vm", "start", "cold")
    daemon.wait_console("cold", BOOT_MARKER, count=3)
    assert read(daemon, "cold") == "before"
    # A memory snapshot of a stopped VM is refused.
    daemon.cli("vm", "stop", "cold")
    status, doc = daemon.request("POST", "/v1/vms/cold/snapshots", {"name": "m", "memory": True})
    assert status == 409 and "running" in doc["error"]["message"]
    daemon.remember_qemu_pids()


@pytest.fixture
def small_default_pool(tmpfs):
    """A vireod whose default pool (where VMs' boot disks go) is a 48 MiB
    tmpfs, mounted before vireod starts."""
    mounted = []
    daemon = Daemon(before_start=lambda state_dir: mounted.append(
        tmpfs(os.path.join(state_dir, "pools", "default"), "48m")))
    try:
        yield daemon, mounted[0]
    finally:
        daemon.cleanup()


def test_snapshot_into_a_full_pool_fails_cleanly(small_default_pool):
    daemon, pool = small_default_pool
    daemon.create_and_boot("tight", memory="128M")
    write(daemon, "tight", "kept")
    disk = daemon.api("GET", "/v1/vms/tight/disks")["disks"][0]["path"]
    size_before = os.path.getsize(disk)
    # 128 MiB of RAM cannot go into a 48 MiB pool: refused before QEMU writes anything.
    status, doc = daemon.request("POST", "/v1/vms/tight/snapshots", {"name": "m", "memory": True})
    assert status == 507 and doc["error"]["code"] == "insufficient-storage", doc
    assert pool in doc["error"]["message"]
    # The same through the CLI: non-zero, the reason on stderr.
    p = daemon.cli("snapshot", "create", "tight", "m2", "--memory", check=False)
    assert p.returncode != 0 and "not enough space" in p.stderr, p
    # Nothing half-made: no snapshot listed or in the image, the VM runs on
    # and its disk has its data.
    assert daemon.api("GET", "/v1/vms/tight/snapshots")["snapshots"] == []
    listing = subprocess.run(["qemu-img", "snapshot", "-U", "-l", disk], capture_output=True,
                             text=True, check=True).stdout
    assert listing.strip() == "", listing
    assert os.path.getsize(disk) == size_before
    assert daemon.vm("tight")["state"] == "running"
    assert read(daemon, "tight") == "kept"
    # A disk-only snapshot of the stopped VM needs no room for memory: allowed.
    daemon.cli("vm", "stop", "tight")
    daemon.task_ok("POST", "/v1/vms/tight/snapshots", {"name": "d"})
    assert [s["name"] for s in daemon.api("GET", "/v1/vms/tight/snapshots")["snapshots"]] == ["d"]


# The tests of the shared VM come last: a module-scoped VM lives until the
# module's end, so snap boots only when they start and does not idle
# through the tests above (an idle TCG guest costs make check CPU all the
# while).
@pytest.fixture(scope="module")
def running():
    """A vireod with one booted VM, "snap", for the memory-snapshot tests."""
    d = Daemon()
    try:
        # TCG with memory hot-plug: its boot memory is padded (qemu-argv.c,
        # boot_pad_kib), which a memory snapshot records and a revert checks.
        d.create_and_boot("snap", memory="128M",
                          create_args=("--max-memory", "256M", "--accel", "tcg"))
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def daemon_with_snap(running):
    """running, its VM without snapshots before and after the test."""
    assert running.api("GET", "/v1/vms/snap/snapshots")["snapshots"] == []
    yield running
    for snap in running.api("GET", "/v1/vms/snap/snapshots")["snapshots"]:
        running.task_ok("DELETE", f"/v1/vms/snap/snapshots/{snap['name']}")


def test_memory_snapshot_revert_brings_the_running_vm_back(daemon_with_snap):
    daemon = daemon_with_snap
    write(daemon, "snap", "first")
    daemon.task_ok("POST", "/v1/vms/snap/snapshots", {"name": "s1", "memory": True})
    write(daemon, "snap", "second")
    assert read(daemon, "snap") == "second"
    # A backup since: the disk's dirty bitmap, with which QEMU refuses to
    # load a snapshot ("Device has active dirty bitmaps"); the revert drops it.
    daemon.task_ok("POST", "/v1/vms/snap/backups", {})
    # Reverting a running VM discards its state: only with force.
    status, doc = daemon.request("POST", "/v1/vms/snap/snapshots/s1/revert", {})
    assert status == 409 and "force" in doc["error"]["message"]
    daemon.task_ok("POST", "/v1/vms/snap/snapshots/s1/revert", {"force": True})
    assert daemon.vm("snap")["state"] == "running"
    assert read(daemon, "snap") == "first"
    listed = daemon.api("GET", "/v1/vms/snap/snapshots")
    assert listed["current"] == "s1" and listed["snapshots"][0]["memory"] is True


def test_tree_with_middle_delete_still_reverts(daemon_with_snap):
    daemon = daemon_with_snap
    for name in ("a", "b", "c"):
        write(daemon, "snap", name.upper())
        daemon.task_ok("POST", "/v1/vms/snap/snapshots", {"name": name, "memory": True})
    snaps = {s["name"]: s for s in daemon.api("GET", "/v1/vms/snap/snapshots")["snapshots"]}
    assert (snaps["a"]["parent"], snaps["b"]["parent"], snaps["c"]["parent"]) == (None, "a", "b")
    daemon.task_ok("DELETE", "/v1/vms/snap/snapshots/b")
    snaps = {s["name"]: s for s in daemon.api("GET", "/v1/vms/snap/snapshots")["snapshots"]}
    assert set(snaps) == {"a", "c"} and snaps["c"]["parent"] == "a"
    assert snaps["a"]["children"] == ["c"]
    for name in ("c", "a"):
        daemon.task_ok("POST", f"/v1/vms/snap/snapshots/{name}/revert", {"force": True})
        assert read(daemon, "snap") == name.upper()
    status, _ = daemon.request("POST", "/v1/vms/snap/snapshots/b/revert", {"force": True})
    assert status == 404
    status, doc = daemon.request("POST", "/v1/vms/snap/snapshots", {"name": "Bad!"})
    assert status == 400
    status, doc = daemon.request("POST", "/v1/vms/snap/snapshots", {"name": "a", "memory": True})
    assert status == 409


def test_memory_snapshot_refuses_changed_hardware(daemon_with_snap):
    daemon = daemon_with_snap
    write(daemon, "snap", "one")
    daemon.task_ok("POST", "/v1/vms/snap/snapshots", {"name": "s", "memory": True})
    # A disk hot-plugged since: the memory state no longer fits the VM.
    daemon.task_ok("POST", "/v1/vms/snap/disks", {"size_bytes": 8 << 20})
    status, doc = daemon.request("POST", "/v1/vms/snap/snapshots/s/revert", {"force": True})
    assert status == 409 and "hardware changed" in doc["error"]["message"], doc
    assert daemon.vm("snap")["state"] == "running"
    # Put the hardware back and the revert works.
    daemon.task_ok("DELETE", "/v1/vms/snap/disks/1")
    write(daemon, "snap", "two")
    daemon.task_ok("POST", "/v1/vms/snap/snapshots/s/revert", {"force": True})
    assert read(daemon, "snap") == "one"
