"""System tests of storage on the real path: pools and volumes made by
vireod with qemu-img, attached to real QEMU VMs and read and written from
inside the booted guest."""

import hashlib
import os
import subprocess

import pytest

from vireo_harness import BOOT_MARKER

MiB = 1 << 20


def sectors(daemon, vm, dev):
    return int(daemon.guest(vm, f"cat /sys/block/{dev}/size").split()[0])


def volume(daemon, key):
    pool, name = key.split("/")
    return daemon.api("GET", f"/v1/pools/{pool}/volumes/{name}")


def test_two_disks_data_survives_and_online_resize(daemon):
    daemon.cli("vm", "create", "disks", "--memory", "128M")
    daemon.task_ok("POST", "/v1/pools/default/volumes", {"name": "data1", "size_bytes": 32 * MiB})
    daemon.task_ok("POST", "/v1/vms/disks/disks", {"volume": "default/data1"})
    disks = daemon.api("GET", "/v1/vms/disks/disks")["disks"]
    assert [d["volume"] for d in disks] == ["default/disks-disk0", "default/data1"]

    daemon.cli("vm", "start", "disks")
    daemon.wait_console("disks", BOOT_MARKER)
    image_size = os.path.getsize(os.path.join(daemon.state_dir, "images", "default", "disk.raw"))
    assert sectors(daemon, "disks", "vda") * 512 == image_size
    assert sectors(daemon, "disks", "vdb") * 512 == 32 * MiB

    # A write is durable once flushed (fsync issues the flush QEMU waits for).
    daemon.guest("disks", "echo vireo-data-123 | dd of=/dev/vdb conv=fsync 2>/dev/null")
    daemon.cli("vm", "stop", "disks")
    daemon.cli("vm", "start", "disks")
    daemon.wait_console("disks", BOOT_MARKER, count=2)
    assert "vireo-data-123" in daemon.guest("disks", "head -c 16 /dev/vdb")

    # Online resize through QMP block_resize: the guest sees it without a reboot.
    daemon.task_ok("POST", "/v1/pools/default/volumes/data1/resize", {"size_bytes": 48 * MiB})
    assert sectors(daemon, "disks", "vdb") * 512 == 48 * MiB
    assert volume(daemon, "default/data1")["virtual_size_bytes"] == 48 * MiB
    # Shrinking an attached volume is refused, and leaves it as it was.
    status, doc = daemon.request("POST", "/v1/pools/default/volumes/data1/resize",
                                 {"size_bytes": 16 * MiB, "allow_shrink": True})
    assert status == 409 and "detach" in doc["error"]["message"]
    status, doc = daemon.request("POST", "/v1/pools/default/volumes/data1/resize",
                                 {"size_bytes": 16 * MiB})
    assert status == 400 and "allow_shrink" in doc["error"]["message"]
    assert volume(daemon, "default/data1")["virtual_size_bytes"] == 48 * MiB
    daemon.remember_qemu_pids()


def test_linked_clone_shares_base_full_clone_is_independent(daemon):
    daemon.cli("vm", "create", "linked", "--memory", "128M")
    daemon.api("POST", "/v1/vms", {"name": "full", "memory_mib": 128, "full_clone": True},
               expect=202)
    daemon.wait_state("full", "defined", timeout=60)
    def wait_ready(key):
        # The copy's volume is registered by the create's task, which may
        # still be running after the VM shows "defined": 404 until then.
        status, doc = daemon.request("GET", "/v1/pools/{}/volumes/{}".format(*key.split("/")))
        assert status in (200, 404), (status, doc)
        return status == 200 and doc["state"] == "ready"
    from vireo_harness import wait_until
    wait_until(lambda: wait_ready("default/full-disk0"), 60, what="full clone")

    linked = volume(daemon, "default/linked-disk0")
    full = volume(daemon, "default/full-disk0")
    assert linked["image"] == "default" and len(linked["backing"]) == 1
    assert linked["allocation_bytes"] < linked["virtual_size_bytes"] // 10
    assert full["image"] is None and full["backing"] == []

    # Not booted here: a linked clone of the image boots in nearly every
    # test (create_and_boot), a full copy in test_lifecycle.py (vm clone) and
    # test_migrate.py (full_clone), each under TCG.
    # The image is in use by the linked clone: it cannot be deleted.
    status, doc = daemon.request("DELETE", "/v1/images/default")
    assert status == 409, doc


def make_test_disk(tmp_path, fmt):
    """A 4 MiB raw file of known bytes (their own for each fmt), converted
    to fmt by qemu-img."""
    raw = tmp_path / f"src-{fmt}.raw"
    data = hashlib.sha256(b"vireo-" + fmt.encode()).digest() * (4 * MiB // 32)
    raw.write_bytes(data)
    out = tmp_path / f"src.{fmt}"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, str(raw), str(out)],
                   check=True)
    return out, hashlib.sha256(data).hexdigest()


def test_import_other_platforms_disks_read_back_identical(daemon, tmp_path):
    """A VMware (vmdk) and a VirtualBox (vdi) disk, imported, read back in
    one booted guest (vdb and vdc; one TCG boot for both formats)."""
    os.chmod(tmp_path, 0o755)
    daemon.cli("vm", "create", "reader", "--memory", "128M")
    digests = {}
    for fmt in ("vmdk", "vdi"):
        path, digests[fmt] = make_test_disk(tmp_path, fmt)
        daemon.task_ok("POST", "/v1/pools/default/volumes",
                       {"name": f"imp-{fmt}", "import_path": str(path)})
        assert volume(daemon, f"default/imp-{fmt}")["format"] == "qcow2"
        daemon.task_ok("POST", "/v1/vms/reader/disks", {"volume": f"default/imp-{fmt}"})
    assert digests["vmdk"] != digests["vdi"]
    daemon.cli("vm", "start", "reader")
    daemon.wait_console("reader", BOOT_MARKER)
    for fmt, dev in (("vmdk", "vdb"), ("vdi", "vdc")):
        out = daemon.guest("reader", f"dd if=/dev/{dev} bs=1M count=4 2>/dev/null | sha256sum")
        assert out.split()[0] == digests[fmt], (fmt, out)
    daemon.remember_qemu_pids()


def test_upload_then_download_round_trip(daemon, tmp_path):
    path, _ = make_test_disk(tmp_path, "vdi")
    status, doc = daemon.request("PUT", "/v1/pools/default/volumes/up/data",
                                 raw=path.read_bytes(),
                                 headers={"Content-Type": "application/octet-stream"})
    assert status == 202, doc
    assert daemon.wait_task(doc["task"])["state"] == "succeeded"
    status, data = daemon.request("GET", "/v1/pools/default/volumes/up/data")
    assert status == 200
    got = tmp_path / "got.qcow2"
    got.write_bytes(data)
    cmp = subprocess.run(["qemu-img", "compare", str(path), str(got)], capture_output=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    # No upload temp file stays behind.
    assert not [n for n in os.listdir(os.path.join(daemon.state_dir, "pools", "default"))
                if n.startswith(".upload")]


def test_volume_in_use_by_running_vm_cannot_be_attached_elsewhere(daemon):
    # A running VM (its QEMU holds the volume) is what the refusals need,
    # not a booted guest: no TCG boot (make check is CPU-bound).
    daemon.cli("vm", "create", "owner", "--memory", "128M")
    daemon.cli("vm", "start", "owner")
    daemon.remember_qemu_pids()
    assert daemon.vm("owner")["state"] == "running"
    daemon.cli("vm", "create", "thief", "--memory", "128M")
    status, doc = daemon.request("POST", "/v1/vms/thief/disks", {"volume": "default/owner-disk0"})
    assert status == 409 and "owner" in doc["error"]["message"], doc
    assert len(daemon.api("GET", "/v1/vms/thief/disks")["disks"]) == 1
    # Nor deleted, nor cloned while its VM runs.
    status, _ = daemon.request("DELETE", "/v1/pools/default/volumes/owner-disk0")
    assert status == 409
    status, _ = daemon.request("POST", "/v1/pools/default/volumes/owner-disk0/clone",
                               {"target": "default/copy"})
    assert status == 409


@pytest.fixture
def small_pool(tmpfs_pool):
    """A vireod with a pool "small" on a 16 MiB tmpfs (a size-limited directory)."""
    return tmpfs_pool("16m")


def test_full_pool_fails_cleanly(small_pool, tmp_path):
    daemon, small_pool = small_pool
    before = sorted(os.listdir(small_pool))
    # A raw volume is allocated in full: refused at once.
    status, doc = daemon.request("POST", "/v1/pools/small/volumes",
                                 {"name": "big", "size_bytes": 64 * MiB, "format": "raw"})
    assert status == 507, doc
    assert doc["error"]["code"] == "insufficient-storage"
    # An import that runs out of space mid-way fails its task and leaves nothing.
    src = tmp_path / "big.raw"
    with open(src, "wb") as f:
        for _ in range(32):
            f.write(os.urandom(MiB))
    doc = daemon.api("POST", "/v1/pools/small/volumes",
                     {"name": "big", "import_path": str(src)}, expect=202)
    task = daemon.wait_task(doc["task"])
    assert task["state"] == "failed"
    assert "full" in task["error"]["message"] or "space" in task["error"]["message"]
    assert sorted(os.listdir(small_pool)) == before
    status, _ = daemon.request("GET", "/v1/pools/small/volumes/big")
    assert status == 404
    # The pool is empty again: it can be deleted.
    daemon.api("DELETE", "/v1/pools/small")


def test_shareable_volume_runs_in_two_vms(daemon):
    daemon.task_ok("POST", "/v1/pools/default/volumes",
                   {"name": "shared", "size_bytes": 8 * MiB, "format": "raw"})
    daemon.cli("volume", "set", "default/shared", "--shareable")
    for vm in ("sh-a", "sh-b"):
        daemon.cli("vm", "create", vm, "--memory", "128M")
        daemon.cli("vm", "disk", "add", vm, "default/shared")
    for vm in ("sh-a", "sh-b"):
        daemon.cli("vm", "start", vm)
        daemon.wait_console(vm, BOOT_MARKER)
    # Both QEMUs hold it open (image locking is off for it): a write in one is
    # read in the other.
    daemon.guest("sh-a", "echo shared-bytes | dd of=/dev/vdb conv=fsync 2>/dev/null")
    assert "shared-bytes" in daemon.guest("sh-b", "dd if=/dev/vdb bs=12 count=1 iflag=direct 2>/dev/null")
    # Attached volumes cannot change their shareability.
    p = daemon.cli("volume", "set", "default/shared", "--no-shareable", check=False)
    assert p.returncode == 1 and "detach" in p.stderr
    daemon.remember_qemu_pids()
