"""The harness's ext4_files (used by test_debian_guest.py and
test_guest_agent.py to read a backup's or a restored disk's files without a
boot): it reads files from a qcow2 disk, says None for a missing one,
fails on a disk not in the format its VM declares, and leaves no raw copy
behind, also when the copy fails or times out (a partial
copy can be as large as the disk). No VM, no daemon: seconds."""

import os
import subprocess

import pytest

import vireo_harness
from vireo_harness import ext4_files


def small_ext4_qcow2(tmp_path):
    """A 16 MiB ext4 file system holding /etc/hostname, as qcow2."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("deb1\n")
    raw = tmp_path / "fs.raw"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(raw), "16M"], check=True,
                   capture_output=True, timeout=60)
    disk = tmp_path / "fs.qcow2"
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(disk)], check=True,
                   capture_output=True, timeout=60)
    raw.unlink()
    return disk


def test_reads_files_and_removes_its_copy(tmp_path):
    disk = small_ext4_qcow2(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    assert ext4_files(str(disk), str(work), "/etc/hostname", "/etc/missing") == ["deb1\n", None]
    assert os.listdir(work) == []


def test_a_disk_not_in_its_declared_format_fails(tmp_path):
    """A VM's disk in another format than the one it is declared in (a
    restore that wrote the wrong one) does not boot: read as probed, it
    would pass. Either way round it fails here."""
    disk = small_ext4_qcow2(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    assert ext4_files(str(disk), str(work), "/etc/hostname", fmt="qcow2") == ["deb1\n"]
    with pytest.raises(RuntimeError, match="no ext4 file system"):
        ext4_files(str(disk), str(work), "/etc/hostname", fmt="raw")
    raw = tmp_path / "fs.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(raw)], check=True,
                   capture_output=True, timeout=60)
    with pytest.raises(subprocess.CalledProcessError):
        ext4_files(str(raw), str(work), "/etc/hostname", fmt="qcow2")
    assert os.listdir(work) == []


def test_a_copy_that_times_out_is_removed(tmp_path, monkeypatch):
    disk = small_ext4_qcow2(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    real_run = subprocess.run

    def convert_times_out(cmd, **kwargs):
        if cmd[0] != "qemu-img":
            return real_run(cmd, **kwargs)
        with open(cmd[-1], "wb") as f:  # what qemu-img wrote before its bound
            f.write(b"\0" * 4096)
        raise subprocess.TimeoutExpired(cmd, kwargs.get("timeout"))
    monkeypatch.setattr(vireo_harness.subprocess, "run", convert_times_out)
    with pytest.raises(subprocess.TimeoutExpired):
        ext4_files(str(disk), str(work), "/etc/hostname")
    assert os.listdir(work) == []
