"""An rbd pool shared by a 2-host cluster (cluster_harness) against a real
Ceph (ceph_harness) in a namespace of the test's own on the hosts' switch:
the pool is made once (on h1) and every host reaches it (its key written
on h2 from the cluster's copy); a host that cannot reach the monitors (a
blackhole route to them in its namespace) shows the pool unreachable with
the reason, and a migration to it is refused, until the route goes. One
real TCG guest, a linked clone of the default image on RBD (an RBD clone
with exclusive-lock), writes a file, live-migrates from h1 to h2 with guest
RAM compared on both sides (test_migrate's way: both sides paused, each
side's RAM saved and compared byte for byte) and without a disk copy (the
task's disk_bytes and disks_copied are 0); Ceph sees the image opened from
h2's address only; the file is read back from the disk after the move, and
HA is accepted for the VM (its disk is shared)."""

import json
import os
import subprocess

import pytest

from ceph_harness import Ceph, CephUnavailable
from test_cluster_shared_pools import pool_on, record_pools
from test_migrate import create_on, form, hosts_of, migrate, ram_images, same_bytes
from vireo_harness import BOOT_MARKER, wait_until

MiB = 1 << 20
CEPH_INDEX = 200  # the Ceph's address on the switch: PREFIX.200, no host's


@pytest.fixture
def ceph_box():
    """Holds the Ceph a test starts on its cluster's switch; stops it after
    the cluster's own teardown (this fixture is set up first): no host's
    QEMU or vireod is left waiting on a Ceph already gone."""
    box = {}
    try:
        yield box
    finally:
        if "ceph" in box:
            box["ceph"].stop()


def start_ceph(c, box):
    ns, address = c.add_netns("ceph", CEPH_INDEX)
    try:
        box["ceph"] = Ceph(netns=ns, address=address)
    except CephUnavailable as e:
        pytest.skip(str(e))
    return box["ceph"]


def rbd_json(ceph, *args):
    return json.loads(ceph.rbd(*args, "--format", "json"))


def watchers(ceph, image):
    """The addresses (without port and nonce) that hold image open."""
    return sorted(w["address"].split(":")[0]
                  for w in rbd_json(ceph, "status", image).get("watchers", []))


def reachable(h, name):
    """Pool name's reachable as h shows it (None: no such pool there)."""
    return (pool_on(h, name) or {}).get("reachable")


def test_vm_on_rbd_migrates_without_disk_copy(ceph_box, cluster, tmp_path):
    keep = str(tmp_path / "ram")
    os.makedirs(keep)
    os.environ["VIREO_TEST_MIGRATE_KEEP_RAM"] = keep  # test-only: both sides' pmemsave kept
    try:
        c = cluster(2, driver="qemu", listen=False)
    finally:
        del os.environ["VIREO_TEST_MIGRATE_KEEP_RAM"]
    ceph = start_ceph(c, ceph_box)
    form(c)
    h1, h2 = c.hosts
    ceph.create_pool("vms")
    keyring = str(tmp_path / "ceph.client.vireo.keyring")
    key = ceph.add_user("vireo", "vms", keyring)

    # Made once, on h1: the cluster's pool; h2 writes its own key file
    # from the cluster's copy and reaches the monitors too.
    h1.cli("pool", "create", "ceph", "--type", "rbd", "--monitors", ceph.monitors,
           "--pool", "vms", "--user", "vireo", "--keyring", keyring)
    for h in (h1, h2):
        wait_until(lambda: reachable(h, "ceph"), 30,
                   what=f"pool ceph reachable on {h.name}")
        pool = pool_on(h, "ceph")
        assert pool["shared"] is True and pool["type"] == "rbd", pool
        assert pool["path"] == os.path.join(h.state_dir, "rbd", "ceph"), pool
        with open(os.path.join(h.state_dir, "rbd", "ceph", "key")) as f:
            assert f.read().strip() == key
        assert key not in json.dumps(h.api("GET", "/v1/pools"))
    assert [p["name"] for p in h2.api("GET", "/v1/pools")["pools"]].count("ceph") == 1

    # The VM: a linked clone of the default image in the pool (an RBD clone
    # of the image's base, with exclusive-lock), booted on h1.
    create_on(h1, "r1", pool="ceph", memory=128, full_clone=False)
    volume = h1.vm("r1")["disks"][0]["volume"]
    vol = h1.api("GET", f"/v1/pools/ceph/volumes/{volume.split('/', 1)[1]}")
    image = vol["rbd_image"]
    info = rbd_json(ceph, "info", image)
    assert "exclusive-lock" in info["features"] and info.get("parent"), info
    h1.cli("vm", "start", "r1")
    h1.wait_console("r1", BOOT_MARKER, timeout=240)
    assert watchers(ceph, image) == [h1.address]
    h1.guest("r1", "echo written-before-the-move > /rbd-check.txt; sync")

    # h2 loses its route to the monitors: unreachable there, with the
    # reason (its host record too, seen from h1); h1 still reaches it, and
    # a migration to h2 is refused. The route back: reachable again.
    route = ["ip", "-n", h2.host_netns.name, "route", "add", "blackhole", f"{ceph.monitors}/32"]
    subprocess.run(route, check=True)
    try:
        wait_until(lambda: reachable(h2, "ceph") is False, 40,
                   what="pool ceph unreachable on h2")
        reason = pool_on(h2, "ceph")["reason"]
        assert "Ceph cluster cannot be reached from this host" in reason, reason
        assert pool_on(h1, "ceph")["reachable"] is True
        wait_until(lambda: "ceph" in record_pools(h1, h2)[1], 30, what="h2's record says so")
        status, doc = h1.request("POST", "/v1/vms/r1/migrate", {"to": "h2"})
        msg = doc["error"]["message"]
        assert status == 409 and "cannot reach pool" in msg and "ceph" in msg, doc
    finally:
        route[4] = "del"
        subprocess.run(route, check=True)
    wait_until(lambda: reachable(h2, "ceph"), 40, what="ceph reachable again")
    wait_until(lambda: "ceph" in record_pools(h1, h2)[0], 30, what="h2's record reaches it")

    task = migrate(h2, "r1", {"to": "h2", "verify_memory": True})
    res = task["result"]
    assert res["memory_verified"] is True and res["to"] == "h2", res
    assert res["disk_bytes"] == 0 and res["disks_copied"] == 0, res
    assert res["phases_ms"]["disks"] < 5000, res
    vm_id = h2.vm("r1")["id"]
    src, dst = ram_images(keep, h1, vm_id), ram_images(keep, h2, vm_id)
    assert src and [x.rsplit(".", 2)[1] for x in src] == [x.rsplit(".", 2)[1] for x in dst], \
        (src, dst)
    for a, b in zip(src, dst):
        assert os.path.getsize(os.path.join(keep, a)) >= 64 * MiB
        assert same_bytes(os.path.join(keep, a), os.path.join(keep, b)), (a, b)
    for h in (h1, h2):
        wait_until(lambda: hosts_of(h, "r1") == ["h2"], 30, what=f"r1 on h2 seen from {h.name}")
    # The same RBD image, now open from h2 alone (h1's QEMU is gone).
    assert h2.vm("r1")["disks"][0]["volume"] == volume
    wait_until(lambda: watchers(ceph, image) == [h2.address], 30, what="image open on h2 only")

    # The write made before the move, read back from the disk (the page
    # cache dropped first) on h2.
    out = h2.guest("r1", "sync; echo 3 > /proc/sys/vm/drop_caches; cat /rbd-check.txt")
    assert "written-before-the-move" in out.splitlines(), out

    # Eligible for HA: its only disk is on the shared rbd pool.
    h1.cli("vm", "set", "r1", "--ha", "on")
    assert h2.vm("r1")["ha"] is True
    h2.cli("vm", "stop", "r1", "--force")
