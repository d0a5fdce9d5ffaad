"""pytest fixtures for vireo's system tests: each test gets its own vireod
in its own network namespace and directories (see vireo_harness); shared
ones for a fake driver with injected faults and for size-limited (tmpfs)
directories and pools."""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from vireo_harness import Daemon  # noqa: E402
from cluster_harness import Cluster  # noqa: E402
from ceph_harness import Ceph, CephUnavailable  # noqa: E402


@pytest.fixture
def daemon():
    d = Daemon()
    try:
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def fake_daemon():
    d = Daemon(driver="fake")
    try:
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def faults(fake_daemon):
    """A fake-driver vireod restarted with a fault directory (d.fault_dir):
    vireo_harness.inject(d, op, err) makes the next `op` fail."""
    d = fake_daemon
    d.fault_dir = os.path.join(d.tmp, "faults")
    os.makedirs(d.fault_dir)
    d.stop()
    os.environ["VIREO_FAKE_FAULTS"] = d.fault_dir
    try:
        d.start()
    finally:
        del os.environ["VIREO_FAKE_FAULTS"]
    return d


@pytest.fixture
def tmpfs():
    """tmpfs(path, size) mounts a tmpfs of `size` ("16m") at path (made if
    missing) and returns it; each is unmounted after the test, once the
    fixtures that use it are done. Mount before vireod starts (or from
    Daemon(before_start=...)): its mount namespace (ip netns exec makes one)
    only has what was mounted by then."""
    mounted = []

    def mount(path, size):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "vireo-test", str(path)],
                       check=True)
        mounted.append(str(path))
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", path], check=False)


@pytest.fixture
def tmpfs_pool(tmp_path, tmpfs):
    """tmpfs_pool(size, **fields) → (daemon, mountpoint Path): a vireod with a pool
    "small" (more fields of its POST body, e.g. type="backup", as given) on a
    tmpfs of `size`, a size-limited directory."""
    daemons = []

    def make(size, **fields):
        mnt = tmpfs(tmp_path / "small", size)
        daemon = Daemon()
        daemons.append(daemon)
        daemon.api("POST", "/v1/pools", {"name": "small", **fields, "path": str(mnt)}, expect=201)
        return daemon, mnt

    try:
        yield make
    finally:
        for daemon in daemons:
            daemon.cleanup()


@pytest.fixture
def cluster():
    """cluster(n, driver="fake", ...) → a cluster_harness.Cluster of n hosts,
    removed (processes, namespaces, directories) after the test."""
    made = []

    def make(n, **kwargs):
        c = Cluster(n, **kwargs)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.cleanup()


@pytest.fixture(scope="module")
def ceph():
    """One real single-host Ceph (ceph_harness.Ceph: a monitor, a manager
    and an OSD on a sparse file) in a namespace of its own, shared by the
    tests of a module (test_storage_rbd.py's); run a vireod beside it with
    Daemon(netns=ceph.netns). Stopped at the module's end: it does not idle
    through the files after it in the same pytest run (group C of
    scripts/check.sh). Skipped, with the reason, where it cannot start."""
    try:
        c = Ceph()
    except CephUnavailable as e:
        pytest.skip(str(e))
    try:
        yield c
    finally:
        c.stop()
