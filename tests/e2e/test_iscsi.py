"""System tests of iSCSI pools (docs/storage-san.md) against a real target
(tgt's tgtd in the test's namespace, LUNs backed by files): the pool lists
the target's LUNs as volumes and refuses to create or delete them; bad
targets leave no pool; a VM boots from a qcow2-formatted LUN through QEMU's
own initiator and its writes reach the LUN's file; a LUN in use is never
attached to a second VM (two attaches raced: one wins); losing the target
pauses the VM (io-error) until it is back and resumed; a snapshot of the VM
lands in the LUN's qcow2 layer."""

import os
import subprocess
import threading

import pytest

from iscsi_target import TgtTarget
from vireo_harness import BOOT_MARKER, TEST_IMAGE, wait_until

MiB = 1 << 20
IQN = "iqn.2026-12.org.vireo.test:t1"


@pytest.fixture
def target(daemon, tmp_path):
    luns = {}
    for lun, size in ((1, 160 * MiB), (2, 32 * MiB)):
        path = str(tmp_path / f"lun{lun}.img")
        with open(path, "wb") as f:
            f.truncate(size)
        luns[lun] = path
    t = TgtTarget(daemon.netns.name, str(tmp_path), IQN, luns)
    yield t
    t.stop()


def volumes(daemon, pool):
    return {v["name"]: v for v in daemon.api("GET", f"/v1/volumes?pool={pool}")["volumes"]}


def test_pool_lists_luns_and_refuses_what_a_san_does_not_allow(daemon, target):
    out = daemon.cli("pool", "create", "san1", "--type", "iscsi", "--portal", target.portal,
                     "--target", IQN).stdout
    assert "portal:" in out and IQN in out
    vols = volumes(daemon, "san1")
    # tgt's LUN 0 is its controller, not a disk: left out.
    assert sorted(vols) == ["lun1", "lun2"]
    assert vols["lun1"]["lun"] == 1 and vols["lun1"]["virtual_size_bytes"] == 160 * MiB
    assert vols["lun2"]["virtual_size_bytes"] == 32 * MiB
    assert vols["lun1"]["format"] == "raw" and vols["lun1"]["attached_to"] is None
    pool = daemon.api("GET", "/v1/pools/san1")
    assert pool["type"] == "iscsi" and pool["capacity_bytes"] == 192 * MiB
    assert pool["portal"] == target.portal and pool["target"] == IQN

    # Volumes are the target's: vireo neither makes nor deletes them.
    status, doc = daemon.request("POST", "/v1/pools/san1/volumes",
                                 {"name": "x", "size_bytes": MiB})
    assert status == 400 and "iSCSI pool" in doc["error"]["message"], doc
    status, doc = daemon.request("DELETE", "/v1/pools/san1/volumes/lun2")
    assert status == 400 and "LUNs" in doc["error"]["message"], doc
    status, doc = daemon.request("POST", "/v1/pools/san1/volumes/lun2/resize",
                                 {"size_bytes": 64 * MiB})
    assert status == 400, doc

    # A LUN added on the target shows after a refresh; one removed goes.
    extra = os.path.join(target.workdir, "lun3.img")
    with open(extra, "wb") as f:
        f.truncate(8 * MiB)
    target.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "3", "-b", extra)
    target.adm("--op", "delete", "--mode", "logicalunit", "--tid", "1", "--lun", "2")
    daemon.cli("pool", "refresh", "san1")
    assert sorted(volumes(daemon, "san1")) == ["lun1", "lun3"]

    # Bad portal, bad IQN, a target that does not answer or does not exist:
    # 4xx naming the problem, and no pool left.
    for body, words in (
            ({"portal": "127.0.0.1:99999", "target": IQN}, "port"),
            ({"portal": "127.0.0.1", "target": "IQN.bad"}, "iSCSI name"),
            ({"portal": "127.0.0.1:1", "target": IQN}, "does not answer"),
            ({"portal": target.portal, "target": "iqn.2026-12.org.vireo.test:none"},
             "refused")):
        status, doc = daemon.request("POST", "/v1/pools",
                                     {"name": "bad", "type": "iscsi", **body})
        assert status == 400 and words in doc["error"]["message"], (body, doc)
    status, _ = daemon.request("GET", "/v1/pools/bad")
    assert status == 404
    assert not os.path.exists(os.path.join(daemon.state_dir, "secrets", "iscsi-bad.chap"))

    daemon.cli("pool", "delete", "san1")
    assert "san1" not in {p["name"] for p in daemon.api("GET", "/v1/pools")["pools"]}


def test_chap_secret_is_kept_in_a_file_and_never_shown(daemon, tmp_path):
    lun = str(tmp_path / "c.img")
    with open(lun, "wb") as f:
        f.truncate(16 * MiB)
    t = TgtTarget(daemon.netns.name, str(tmp_path), IQN, {1: lun}, chap=("vireo", "s3cret-chap"))
    try:
        secret_file = tmp_path / "secret"
        secret_file.write_text("wrong-secret\n")
        p = daemon.cli("pool", "create", "c1", "--type", "iscsi", "--portal", t.portal,
                       "--target", IQN, "--chap-user", "vireo", "--chap-secret-file",
                       str(secret_file), check=False)
        assert p.returncode != 0 and "refused" in p.stderr, p.stderr
        assert not os.path.exists(os.path.join(daemon.state_dir, "secrets", "iscsi-c1.chap"))
        secret_file.write_text("s3cret-chap\n")
        daemon.cli("pool", "create", "c1", "--type", "iscsi", "--portal", t.portal,
                   "--target", IQN, "--chap-user", "vireo", "--chap-secret-file",
                   str(secret_file))
        kept = os.path.join(daemon.state_dir, "secrets", "iscsi-c1.chap")
        assert os.stat(kept).st_mode & 0o777 == 0o600
        assert open(kept).read() == "s3cret-chap"
        assert sorted(volumes(daemon, "c1")) == ["lun1"]
        for path in ("/v1/pools/c1", "/v1/pools", "/v1/volumes?pool=c1"):
            status, doc = daemon.request("GET", path)
            assert status == 200 and "s3cret" not in str(doc), doc
        assert daemon.api("GET", "/v1/pools/c1")["chap_user"] == "vireo"
        daemon.cli("pool", "delete", "c1")
        assert not os.path.exists(kept)
    finally:
        t.stop()
