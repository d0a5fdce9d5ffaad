"""The QEMU driver's live-migration entry points with real QEMU, on this
host and without vireod: tests/tools/migrate-check.c boots a guest from the
test image, hot-plugs a disk and a vCPU and grows its memory, starts a shell
loop that keeps writing, prepares a destination from the source's recorded
hardware layout, migrates over a unix socket (held iterating for a few
passes by a 1 ms downtime limit, so pages are sent again while the guest
writes) and compares guest RAM on both sides (pmemsave with both paused)
before resuming the destination. A TCG write QEMU's dirty tracking missed
shows there (qemu-argv.c, "TCG and a second RAM block"). tests/tools/mirror-check.c does the same with local disks (a
linked clone and a data disk mirrored over NBD while the guest writes and
syncs files on the data disk), then compares the disks with qemu-img and
checks the files' checksums in the guest on the destination. Any QEMU they
leave behind (killed mid-way) is killed here by the PID in its run dir."""

import os
import re
import signal
import subprocess
import tempfile

import pytest

from vireo_harness import BUILD, TEST_IMAGE

CHECK = os.path.join(BUILD, "tests", "unit", "migrate-check")
MIRROR_CHECK = os.path.join(BUILD, "tests", "unit", "mirror-check")
VM_ID = "0b6e7c2a-1f3d-4e5a-9c8b-7a6d5e4f3a21"  # the id migrate-check gives its VM
MIRROR_VM_ID = "3c0f6d2e-8a41-4b7e-9d2c-5e6f7a8b9c01"  # mirror-check's


def kill_leftovers(work, vm_id=VM_ID):
    for side in ("src", "dst", "dst1", "dst2", "dst3"):
        try:
            with open(os.path.join(work, side, "qemu.pid")) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if vm_id.encode() not in f.read():
                    continue
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


def test_migration_keeps_guest_ram_identical():
    if not os.path.exists(os.path.join(TEST_IMAGE, "image.json")):
        pytest.skip(f"no guest image at {TEST_IMAGE}")
    with tempfile.TemporaryDirectory(prefix="vireo-migrate-") as work:
        try:
            proc = subprocess.run([CHECK, TEST_IMAGE, work], capture_output=True, text=True,
                                  timeout=900)
        finally:
            kill_leftovers(work)
        print(proc.stdout)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        assert "guest dirties memory" in proc.stdout
        # Held: pages were sent again while the guest wrote (a bulk pass and
        # at least one more sync; a lost write shows only then).
        held = re.search(r"held the migration iterating for (\d+) passes", proc.stdout)
        assert held and int(held.group(1)) >= 2, proc.stdout
        assert "guest RAM identical: boot memory" in proc.stdout
        assert "guest RAM identical: virtio-mem" in proc.stdout
        assert "source: completed" in proc.stdout
        assert "destination runs, source ended" in proc.stdout


def test_migration_with_local_disks_mirrors_them_with_writes_in_flight():
    if not os.path.exists(os.path.join(TEST_IMAGE, "image.json")):
        pytest.skip(f"no guest image at {TEST_IMAGE}")
    with tempfile.TemporaryDirectory(prefix="vireo-mirror-") as work:
        try:
            proc = subprocess.run([MIRROR_CHECK, TEST_IMAGE, work], capture_output=True,
                                  text=True, timeout=1200)
        finally:
            kill_leftovers(work, MIRROR_VM_ID)
        print(proc.stdout)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        assert "cancelled in the disk phase: destination gone" in proc.stdout
        assert "cancelled in the memory phase: destination gone" in proc.stdout
        assert "disks ready: 2 disks" in proc.stdout
        assert "source: completed" in proc.stdout
        assert "guest RAM identical" in proc.stdout
        assert "disks identical: root.qcow2" in proc.stdout
        assert "disks identical: data.qcow2" in proc.stdout
        assert "destination runs" in proc.stdout
        assert " 0 bad;" in proc.stdout
        assert proc.stdout.rstrip().endswith("OK")
