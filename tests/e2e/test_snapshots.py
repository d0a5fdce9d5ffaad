"""System tests of snapshots on real TCG guests: memory snapshots of a
running VM, disk-only snapshots of a stopped one, and a snapshot tree that
survives deleting its middle."""

from vireo_harness import BOOT_MARKER


def write(daemon, vm, text):
    daemon.guest(vm, f"echo {text} > /root/note; sync")


def read(daemon, vm):
    return daemon.guest(vm, "cat /root/note").strip()


def test_memory_snapshot_revert_brings_the_running_vm_back(daemon):
    daemon.create_and_boot("snap", memory="128M")
    write(daemon, "snap", "first")
    daemon.task_ok("POST", "/v1/vms/snap/snapshots", {"name": "s1", "memory": True})
    write(daemon, "snap", "second")
    assert read(daemon, "snap") == "second"
    # Reverting a running VM discards its state: only with force.
    status, doc = daemon.request("POST", "/v1/vms/snap/snapshots/s1/revert", {})
    assert status == 409 and "force" in doc["error"]["message"]
    daemon.task_ok("POST", "/v1/vms/snap/snapshots/s1/revert", {"force": True})
    assert daemon.vm("snap")["state"] == "running"
    assert read(daemon, "snap") == "first"
    listed = daemon.api("GET", "/v1/vms/snap/snapshots")
    assert listed["current"] == "s1" and listed["snapshots"][0]["memory"] is True


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


def test_tree_with_middle_delete_still_reverts(daemon):
    daemon.create_and_boot("tree", memory="128M")
    for name in ("a", "b", "c"):
        write(daemon, "tree", name.upper())
        daemon.task_ok("POST", "/v1/vms/tree/snapshots", {"name": name, "memory": True})
    snaps = {s["name"]: s for s in daemon.api("GET", "/v1/vms/tree/snapshots")["snapshots"]}
    assert (snaps["a"]["parent"], snaps["b"]["parent"], snaps["c"]["parent"]) == (None, "a", "b")
    daemon.task_ok("DELETE", "/v1/vms/tree/snapshots/b")
    snaps = {s["name"]: s for s in daemon.api("GET", "/v1/vms/tree/snapshots")["snapshots"]}
    assert set(snaps) == {"a", "c"} and snaps["c"]["parent"] == "a"
    assert snaps["a"]["children"] == ["c"]
    for name in ("c", "a"):
        daemon.task_ok("POST", f"/v1/vms/tree/snapshots/{name}/revert", {"force": True})
        assert read(daemon, "tree") == name.upper()
    status, _ = daemon.request("POST", "/v1/vms/tree/snapshots/b/revert", {"force": True})
    assert status == 404
    status, doc = daemon.request("POST", "/v1/vms/tree/snapshots", {"name": "Bad!"})
    assert status == 400
    status, doc = daemon.request("POST", "/v1/vms/tree/snapshots", {"name": "a", "memory": True})
    assert status == 409
