"""Live migration over mutual TLS with real QEMU, on this host and without
vireod: tests/tools/migrate-check.c (--tls) and tests/tools/mirror-check.c
(--tls) migrate over tcp:127.0.0.1:PORT with QEMU's tls-creds-x509 made by
the QEMU driver from certificates made here as the cluster's are (a CA and
host certificates with SAN IP:127.0.0.1, EC P-256, serverAuth and
clientAuth; cluster_harness.Pki), compare guest RAM (and, with local disks,
the disks) on both sides, and check no credentials are left on either
side. A destination whose certificate another CA signed is refused: the
migration fails and the source runs on. Any QEMU the tools leave behind is
killed by the PID in its run dir."""

import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from cluster_harness import Pki
from test_driver_migration import (CHECK, MIRROR_CHECK, MIRROR_VM_ID, TEST_IMAGE,
                                   kill_leftovers)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cert_dir(work, other_ca_for_destination=False):
    """CERT_DIR as the tools read it: ca.crt, src.crt/key, dst-ca.crt, dst.crt/key."""
    out = os.path.join(work, "certs")
    os.makedirs(out)
    pki = Pki(os.path.join(work, "pki"))
    src = pki.host_cert("src", ["127.0.0.1"])
    dst_pki = Pki(os.path.join(work, "pki-other"), cn="another CA") \
        if other_ca_for_destination else pki
    dst = dst_pki.host_cert("dst", ["127.0.0.1"])
    shutil.copy(pki.ca_cert, os.path.join(out, "ca.crt"))
    shutil.copy(dst_pki.ca_cert, os.path.join(out, "dst-ca.crt"))
    for name, (crt, key) in (("src", src), ("dst", dst)):
        shutil.copy(crt, os.path.join(out, f"{name}.crt"))
        shutil.copy(key, os.path.join(out, f"{name}.key"))
    return out


def need_image():
    if not os.path.exists(os.path.join(TEST_IMAGE, "image.json")):
        pytest.skip(f"no guest image at {TEST_IMAGE}")


def run(tool, work, args, timeout, vm_id=None):
    try:
        proc = subprocess.run([tool, TEST_IMAGE, work, *args], capture_output=True, text=True,
                              errors="replace", timeout=timeout)
    finally:
        if vm_id:
            kill_leftovers(work, vm_id)
        else:
            kill_leftovers(work)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def test_migration_over_tls_keeps_guest_ram_identical_and_leaves_no_credentials():
    need_image()
    with tempfile.TemporaryDirectory(prefix="vireo-migtls-") as work:
        out = run(CHECK, work, ["--tls", cert_dir(work), str(free_port())], 900)
        assert "migrating over TLS to tcp:127.0.0.1:" in out
        assert "source: completed" in out
        assert "guest RAM identical: boot memory" in out
        assert "guest RAM identical: virtio-mem" in out
        assert "destination: tls-creds vireo-migration-tls" in out
        assert "destination: no TLS credentials left" in out
        assert "destination runs, source ended" in out


def test_migration_to_a_destination_of_another_ca_fails_and_the_source_runs_on():
    need_image()
    with tempfile.TemporaryDirectory(prefix="vireo-migtls-") as work:
        certs = cert_dir(work, other_ca_for_destination=True)
        out = run(CHECK, work, ["--tls", certs, str(free_port()), "--refused"], 900)
        assert "source: failed" in out
        assert "source: no TLS credentials left" in out
        assert "source runs on after the refused migration" in out


def test_local_disks_mirrored_over_tls():
    need_image()
    with tempfile.TemporaryDirectory(prefix="vireo-mirtls-") as work:
        out = run(MIRROR_CHECK, work, ["--tls", cert_dir(work), str(free_port())], 1200,
                  MIRROR_VM_ID)
        assert "over TLS" in out
        # Both cancels (disk phase, memory phase) leave nothing on the source.
        assert out.count("source: no TLS credentials left") == 2
        assert "cancelled in the memory phase: destination gone" in out
        assert "disks ready: 2 disks" in out
        assert "source: completed" in out
        assert "guest RAM identical" in out
        assert "disks identical: root.qcow2" in out
        assert "disks identical: data.qcow2" in out
        assert "destination: no TLS credentials left" in out
        assert out.rstrip().endswith("OK")
