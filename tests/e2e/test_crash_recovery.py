"""Crash recovery (issue 9, defects 10 and 11): a vireod killed with SIGKILL in
the middle of an operation leaves nothing half-made that blocks a name, its
helper processes (qemu-img) die with it, and a VM caught in a transitional
state settles once vireod is back.

The operations are made slow on purpose, so that the kill lands inside them:
vireod runs with a `qemu-img` first in its PATH that reads the source of a
`convert` through QEMU's throttle filter (1 MiB/s) and is otherwise the real
one; an upload is streamed by the test and never finished; the fake driver's
guests ignore the power button. Every wait is bounded."""

import os
import signal
import socket

import pytest

from vireo_harness import OwnProcs, pid_alive, slow_qemu_img, wait_until

MiB = 1 << 20

SLOW_QEMU_IMG = slow_qemu_img()


@pytest.fixture
def slow(fake_daemon):
    """A fake-driver vireod whose qemu-img convert is slow, with a fault
    directory (d.fault_dir) for the fake driver. Yields the daemon; any
    qemu-img child still alive at the end is killed by its PID."""
    d = fake_daemon
    d.fault_dir = os.path.join(d.tmp, "faults")
    os.makedirs(d.fault_dir)
    d.wrap_tool("qemu-img", SLOW_QEMU_IMG, {"VIREO_FAKE_FAULTS": d.fault_dir})
    d.helpers = OwnProcs(d.tmp)  # held by pidfd: a pid reused later is left alone
    try:
        yield d
    finally:
        for pid in d.helpers:
            d.helpers.signal(pid, signal.SIGKILL)
        d.helpers.close()


def children(pid):
    """PIDs whose parent is pid (from /proc/PID/stat)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def convert_child(d):
    """The qemu-img convert vireod runs now, or None."""
    for pid in children(d.proc.pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-img") and b"convert" in argv:
            return pid
    return None


def kill9_during_convert(d):
    """Waits for vireod's qemu-img convert, kills vireod with SIGKILL, and
    checks that the qemu-img dies too (it would write on for minutes)."""
    child = wait_until(lambda: convert_child(d), 60, what="vireod's qemu-img convert")
    d.helpers.add(child)
    d.kill9()
    wait_until(lambda: not pid_alive(child), 30,
               what=f"qemu-img (pid {child}) to die with vireod")


def pool_dir(d):
    return os.path.join(d.state_dir, "pools", "default")


def pool_files(d):
    return sorted(os.listdir(pool_dir(d)))


def vm_dirs(d):
    out = []
    for base in (d.state_dir, d.run_dir):
        top = os.path.join(base, "vms")
        if os.path.isdir(top):
            out += [os.path.join(top, e) for e in os.listdir(top)]
    return sorted(out)


def big_raw(tmp_path, size=256 * MiB):
    """A raw image of non-zero bytes (zeros would be skipped, not read)."""
    path = tmp_path / "big.raw"
    block = bytes(range(256)) * (MiB // 256)
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(block)
    return path


def small_raw(tmp_path):
    path = tmp_path / "small.raw"
    path.write_bytes(b"\x5a" * MiB)
    return path


def test_import_cut_short_by_kill9_leaves_nothing(slow, tmp_path):
    d = slow
    before = pool_files(d)
    src = big_raw(tmp_path)
    d.api("POST", "/v1/pools/default/volumes", {"name": "big", "import_path": str(src)},
          expect=202)
    wait_until(lambda: "big.qcow2" in pool_files(d), 30, what="the volume file")
    kill9_during_convert(d)
    d.start()
    # No half-made volume file stays, and the name can be used again.
    assert pool_files(d) == before
    status, _ = d.request("GET", "/v1/pools/default/volumes/big")
    assert status == 404
    d.task_ok("POST", "/v1/pools/default/volumes",
              {"name": "big", "import_path": str(small_raw(tmp_path))})
    assert pool_files(d) == sorted(before + ["big.qcow2"])


def test_full_clone_create_cut_short_by_kill9_can_be_made_again(slow):
    d = slow
    before_files, before_dirs = pool_files(d), vm_dirs(d)
    d.api("POST", "/v1/vms", {"name": "fc", "memory_mib": 64, "full_clone": True}, expect=202)
    kill9_during_convert(d)
    d.start()
    status, _ = d.request("GET", "/v1/vms/fc")
    assert status == 404
    assert pool_files(d) == before_files
    assert vm_dirs(d) == before_dirs
    # The same create works now (qemu-img at full speed).
    d.kill9()
    d.start()
    d.task_ok("POST", "/v1/vms", {"name": "fc", "memory_mib": 64, "full_clone": True})
    vm = d.vm("fc")
    assert vm["state"] == "defined" and vm["disks"][0]["volume"] == "default/fc-disk0", vm


def test_upload_cut_short_by_kill9_leaves_no_temp_file(slow, tmp_path):
    d = slow
    before = pool_files(d)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    try:
        sock.connect(d.socket)
        sock.sendall(b"PUT /v1/pools/default/volumes/up/data HTTP/1.1\r\n"
                     b"Host: localhost\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: %d\r\n\r\n" % (64 * MiB))
        sock.sendall(b"\x5a" * MiB)

        def partial():
            names = [n for n in pool_files(d) if n.startswith(".upload-")]
            return names and os.stat(os.path.join(pool_dir(d), names[0])).st_size > 0
        wait_until(partial, 30, what="the upload's temp file")
        d.kill9()
    finally:
        sock.close()
    d.start()
    assert pool_files(d) == before
    status, doc = d.request("PUT", "/v1/pools/default/volumes/up/data",
                            raw=small_raw(tmp_path).read_bytes(),
                            headers={"Content-Type": "application/octet-stream"})
    assert status == 202, doc
    assert d.wait_task(doc["task"])["state"] == "succeeded"
    assert pool_files(d) == sorted(before + ["up.qcow2"])


def test_stop_cut_short_by_kill9_settles_after_restart(slow):
    d = slow
    d.cli("vm", "create", "st")
    d.cli("vm", "start", "st")
    open(os.path.join(d.fault_dir, "acpi-ignored"), "w").close()
    d.api("POST", "/v1/vms/st/stop", {"timeout_s": 3600}, expect=202)
    d.wait_state("st", "stopping")
    d.kill9()
    d.start()
    # Its QEMU (the fake one) still runs: the VM is shown running, not stopping.
    d.wait_state("st", "running", timeout=30)
    os.unlink(os.path.join(d.fault_dir, "acpi-ignored"))
    d.task_ok("POST", "/v1/vms/st/stop", {"timeout_s": 30})
    assert d.vm("st")["state"] == "stopped"


def test_stop_cut_short_whose_vm_is_gone_becomes_stopped(slow):
    d = slow
    d.cli("vm", "create", "gone")
    d.cli("vm", "start", "gone")
    open(os.path.join(d.fault_dir, "acpi-ignored"), "w").close()
    d.api("POST", "/v1/vms/gone/stop", {"timeout_s": 3600}, expect=202)
    d.wait_state("gone", "stopping")
    d.kill9()
    # Its QEMU ends while vireod is away (the fake one keeps a state file).
    top = os.path.join(d.run_dir, "vms")
    for entry in os.listdir(top):
        path = os.path.join(top, entry, "fake.state")
        if os.path.exists(path):
            os.unlink(path)
    d.start()
    assert d.vm("gone")["state"] == "stopped"


def test_start_sweeps_only_what_vireo_left_half_made(fake_daemon, tmp_path):
    """Planted leftovers of every kind go (or come back, for a disk moved
    aside by a restore); files vireo did not name stay."""
    d = fake_daemon
    d.task_ok("POST", "/v1/pools/default/volumes",
              {"name": "keep", "import_path": str(small_raw(tmp_path))})
    d.stop()
    pool = pool_dir(d)
    os.rename(os.path.join(pool, "keep.qcow2"), os.path.join(pool, ".replaced-keep.qcow2"))
    with open(os.path.join(d.state_dir, "host-id")) as f:
        host = f.read().strip()
    other = "0123456789abcdef0123456789abcdef"
    assert host != other
    planted = {
        os.path.join(pool, f".restore-{host}-0000abcd-keep.qcow2"): False,
        os.path.join(pool, f".upload-{host}-keep-Ab12Cd"): False,
        # Another host's (a shared pool) stay: they may be in use.
        os.path.join(pool, f".restore-{other}-0000abcd-keep.qcow2"): True,
        os.path.join(pool, f".upload-{other}-keep-Ab12Cd"): True,
        os.path.join(pool, ".upload-keep-Ab12Cd"): True,
        os.path.join(pool, "users-own.img"): True,
        os.path.join(pool, ".hidden-of-user"): True,
        os.path.join(d.state_dir, "images", ".build-x", "disk.qcow2"): False,
        os.path.join(d.state_dir, "images", "half-deleted", "vmlinux"): False,
        os.path.join(d.state_dir, "vms", "0f0e0d0c-0b0a-4908-8706-050403020100",
                     "console.log"): False,
        os.path.join(d.state_dir, "vms", "not-a-vm-id", "file"): True,
        os.path.join(d.run_dir, "networks", "default", "hosts.tmp.12345"): False,
        os.path.join(d.run_dir, "networks", "default", "notes.tmp.x"): True,
    }
    for path in planted:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("x")
    d.start()
    for path, stays in planted.items():
        assert os.path.exists(path) == stays, path
    assert os.path.exists(os.path.join(pool, "keep.qcow2"))
    assert not os.path.exists(os.path.join(pool, ".replaced-keep.qcow2"))
    assert not os.path.exists(os.path.join(d.state_dir, "images", ".build-x"))
    assert not os.path.exists(os.path.join(d.state_dir, "images", "half-deleted"))
    assert [i["name"] for i in d.api("GET", "/v1/images")["images"]] == ["default"]
    assert d.api("GET", "/v1/pools/default/volumes/keep")["state"] == "ready"
    for path, stays in planted.items():
        if stays:
            os.unlink(path)
