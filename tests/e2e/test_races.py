"""Races between two operations whose rule spans two objects (issue 9,
defects 8 and 9), on the fake driver: each test fires the two requests from
threads at once, many times, and checks the rule held every time: a linked
clone's base is never attached, a non-shareable volume has at most one VM, a
deleted network has no NIC, a deleted VM never comes back (not in the API,
not in the store after a restart, no files), one VM is deleted once, and one
image name is built by one import."""

import os
import subprocess

import pytest

from vireo_harness import UnixHTTPConnection, race, wait_until

TRIALS = 20
RACERS = 16  # If-Match races: writers of one revision at once


def outcome(d, reply, refusals=(404, 409)):
    """(status, doc) of a request → True when it answered 202 and its task
    succeeded, False when it was refused (a status of refusals) or its task
    failed."""
    status, doc = reply
    if status != 202:
        assert status in refusals, (status, doc)
        return False
    task = d.wait_task(doc["task"], timeout=60)
    return task["state"] == "succeeded"


def new_volume(d, name):
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": name, "size_bytes": 1 << 20})


def disks_on(d, vm, key):
    return [k["index"] for k in d.api("GET", f"/v1/vms/{vm}/disks")["disks"]
            if k["volume"] == key]


def create_vm(d, name):
    d.task_ok("POST", "/v1/vms", {"name": name, "memory_mib": 64, "networks": ["user"]})


def test_attach_and_linked_clone_of_one_volume_never_both(fake_daemon):
    d = fake_daemon
    create_vm(d, "att")
    for i in range(TRIALS):
        base, key = f"base{i}", f"default/base{i}"
        new_volume(d, base)
        attach, clone = race(
            lambda: d.request("POST", "/v1/vms/att/disks", {"volume": key}),
            lambda: d.request("POST", f"/v1/pools/default/volumes/{base}/clone",
                              {"target": f"default/lc{i}", "linked": True}))
        attached, cloned = outcome(d, attach), outcome(d, clone)
        assert not (attached and cloned), f"trial {i}: both the attach and the linked clone won"
        vol = d.api("GET", f"/v1/pools/default/volumes/{base}")
        clones = [v for v in d.api("GET", "/v1/volumes")["volumes"]
                  if v["backing_volume"] == key]
        assert not (vol["attached_to"] and clones), f"trial {i}: a base is attached: {vol}"
        for index in disks_on(d, "att", key):
            d.task_ok("DELETE", f"/v1/vms/att/disks/{index}")


def test_one_non_shareable_volume_attached_to_two_vms_at_once(fake_daemon):
    d = fake_daemon
    for vm in ("one", "two"):  # running: the hot-plug widens the window
        create_vm(d, vm)
        d.task_ok("POST", f"/v1/vms/{vm}/start")
    for i in range(3 * TRIALS):  # its window is the narrowest: more trials
        key = f"default/solo{i}"
        new_volume(d, f"solo{i}")
        first, second = race(
            lambda: d.request("POST", "/v1/vms/one/disks", {"volume": key}),
            lambda: d.request("POST", "/v1/vms/two/disks", {"volume": key}))
        wins = outcome(d, first) + outcome(d, second)
        users = [vm for vm in ("one", "two") if disks_on(d, vm, key)]
        assert wins <= 1 and len(users) <= 1, f"trial {i}: {key} attached to {users}"
        for vm in users:
            for index in disks_on(d, vm, key):
                d.task_ok("DELETE", f"/v1/vms/{vm}/disks/{index}")


def test_network_delete_while_a_nic_is_added_to_it(fake_daemon):
    d = fake_daemon
    create_vm(d, "nicvm")
    for i in range(TRIALS):
        net = f"rn{i}"
        d.api("POST", "/v1/networks", {"name": net, "type": "isolated"}, expect=201)
        delete, add = race(
            lambda: d.request("DELETE", f"/v1/networks/{net}"),
            lambda: d.request("POST", "/v1/vms/nicvm/nics", {"network": net}))
        added = outcome(d, add, refusals=(400, 409))  # 400: no such network
        deleted = delete[0] == 200
        assert delete[0] in (200, 409), delete
        nics = [n for n in d.api("GET", "/v1/vms/nicvm/nics")["nics"] if n["network"] == net]
        exists = d.request("GET", f"/v1/networks/{net}")[0] == 200
        assert not (deleted and nics), f"trial {i}: network {net} deleted under a NIC on it"
        assert not (nics and not exists), f"trial {i}: a NIC on missing network {net}"
        assert not (added and deleted), f"trial {i}: both the delete and the NIC add won"
        for n in nics:
            d.task_ok("DELETE", f"/v1/vms/nicvm/nics/{n['index']}")
        if exists:
            d.api("DELETE", f"/v1/networks/{net}")


def volumes_of(d, name):
    """The volumes vireod keeps for a VM named name."""
    return [v["key"] for v in d.api("GET", "/v1/volumes")["volumes"]
            if v["name"].startswith(f"{name}-disk")]


HOLDING_QEMU_IMG = """#!/bin/sh
# qemu-img for races: while $HOLD_DIR/create.hold exists, `create` (the
# linked clone of a VM create) waits after making create.held (2 min at most).
if [ "$1" = create ] && [ -e "$HOLD_DIR/create.hold" ]; then
    : > "$HOLD_DIR/create.held"
    i=0
    while [ -e "$HOLD_DIR/create.hold" ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done
fi
exec {real} "$@"
"""


@pytest.fixture
def holding(fake_daemon):
    """A fake-driver vireod whose qemu-img create waits while
    d.hold_dir/create.hold exists (see HOLDING_QEMU_IMG)."""
    d = fake_daemon
    d.hold_dir = os.path.join(d.tmp, "hold")
    os.makedirs(d.hold_dir)
    d.wrap_tool("qemu-img", HOLDING_QEMU_IMG, {"HOLD_DIR": d.hold_dir})
    return d


def test_forced_delete_during_create_never_brings_the_vm_back(holding):
    """Even trials hold the create inside its disk's qemu-img create until
    the delete has been answered, so the delete certainly lands while the
    create runs; odd trials send the two back to back."""
    d = holding
    hold = os.path.join(d.hold_dir, "create.hold")
    held = os.path.join(d.hold_dir, "create.held")
    ids = []
    for i in range(TRIALS):
        name = f"gone{i}"
        if i % 2 == 0:
            open(hold, "w").close()
        try:
            create = d.request("POST", "/v1/vms", {"name": name, "memory_mib": 64,
                                                   "networks": ["user"]})
            assert create[0] == 202, create
            ids.append(create[1]["vm"]["id"])
            if i % 2 == 0:
                wait_until(lambda: os.path.exists(held), 30, what="the create's qemu-img")
            delete = d.request("DELETE", f"/v1/vms/{name}?force=true")
            if i % 2 == 0:
                task = d.api("GET", f"/v1/tasks/{create[1]['task']['id']}")
                assert task["state"] == "running", f"trial {i}: {task}"
        finally:
            for f in (hold, held):
                if os.path.exists(f):
                    os.unlink(f)
        outcome(d, create)  # either outcome: the VM must be gone all the same
        assert outcome(d, delete), f"trial {i}: the forced delete failed: {delete}"
        assert d.request("GET", f"/v1/vms/{name}")[0] == 404, f"trial {i}: {name} came back"
        assert not volumes_of(d, name), f"trial {i}: {name} left {volumes_of(d, name)}"
        assert not os.path.exists(os.path.join(d.state_dir, "vms", ids[-1])), f"trial {i}"
    # Nor from the store after a restart.
    d.stop()
    d.start()
    names = [v["name"] for v in d.api("GET", "/v1/vms")["vms"]]
    assert not [n for n in names if n.startswith("gone")], names
    for vm_id in ids:
        assert not os.path.exists(os.path.join(d.state_dir, "vms", vm_id)), vm_id
    assert not [v for v in d.api("GET", "/v1/volumes")["volumes"]
                if v["name"].startswith("gone")]


def test_parallel_deletes_of_one_vm_delete_it_once(fake_daemon):
    d = fake_daemon
    for i in range(5):
        name = f"twice{i}"
        create_vm(d, name)
        replies = race(*[lambda: d.request("DELETE", f"/v1/vms/{name}") for _ in range(50)])
        statuses = sorted(s for s, _ in replies)
        assert statuses.count(202) == 1, f"trial {i}: {statuses}"
        assert set(statuses) <= {202, 404, 409}, statuses
        winner = next(doc for s, doc in replies if s == 202)
        assert d.wait_task(winner["task"])["state"] == "succeeded"
        assert d.request("GET", f"/v1/vms/{name}")[0] == 404


def test_parallel_imports_of_one_image_name_build_one_image(fake_daemon):
    d = fake_daemon
    src = os.path.join(d.tmp, "src.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", src, "4M"], check=True)
    for i in range(10):
        name = f"img{i}"
        replies = race(*[lambda: d.request("POST", "/v1/images",
                                           {"name": name, "import_path": src})
                         for _ in range(4)])
        statuses = sorted(s for s, _ in replies)
        assert statuses.count(202) == 1 and statuses.count(409) == 3, f"trial {i}: {statuses}"
        winner = next(doc for s, doc in replies if s == 202)
        task = d.wait_task(winner["task"])
        assert task["state"] == "succeeded", task
        images = {img["name"]: img for img in d.api("GET", "/v1/images")["images"]}
        assert name in images, images.keys()
        disk = images[name]["disk"]
        subprocess.run(["qemu-img", "check", "-q", disk], check=True)
        info = subprocess.run(["qemu-img", "info", "--output", "json", disk],
                              capture_output=True, text=True, check=True).stdout
        assert '"virtual-size": 4194304' in info, info
        leftovers = [e for e in os.listdir(os.path.join(d.state_dir, "images"))
                     if e.startswith(".")]
        assert not leftovers, leftovers


HOLDING_CLONE_QEMU_IMG = """#!/bin/sh
# qemu-img for races: while $HOLD_DIR/clone.hold exists, a `create` with a
# backing file (a VM create's linked clone; a plain volume create has none)
# waits after making clone.held (2 min at most).
case " $* " in *" create "*" -b "*)
    if [ -e "$HOLD_DIR/clone.hold" ]; then
        : > "$HOLD_DIR/clone.held"
        i=0
        while [ -e "$HOLD_DIR/clone.hold" ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done
    fi;;
esac
exec {real} "$@"
"""


def test_a_vm_being_created_names_no_volume_until_it_made_one(fake_daemon):
    """A VM whose create waits for a worker has no disk yet: a volume
    created meanwhile under the name the VM would have taken is nobody's
    (not attached to it, deletable); the VM then gets a name that is free."""
    d = fake_daemon
    hold_dir = os.path.join(d.tmp, "hold")
    os.makedirs(hold_dir)
    d.wrap_tool("qemu-img", HOLDING_CLONE_QEMU_IMG, {"HOLD_DIR": hold_dir})
    hold = os.path.join(hold_dir, "clone.hold")
    open(hold, "w").close()
    tasks = []
    try:
        # Every worker (8) busy with a create held in its linked clone.
        for i in range(8):
            status, doc = d.request("POST", "/v1/vms", {"name": f"busy{i}", "memory_mib": 64,
                                                        "networks": ["user"]})
            assert status == 202, doc
            tasks.append(doc["task"])
        wait_until(lambda: all(d.api("GET", f"/v1/tasks/{t['id']}")["state"] == "running"
                               for t in tasks), 60, what="8 creates running")
        status, create = d.request("POST", "/v1/vms", {"name": "pv", "memory_mib": 64,
                                                        "networks": ["user"]})
        assert status == 202, create
        tasks.append(create["task"])
        assert d.api("GET", f"/v1/tasks/{create['task']['id']}")["state"] == "queued"
        assert d.vm("pv")["disks"] == [], d.vm("pv")  # its disk comes with its volume
        status, doc = d.request("POST", "/v1/pools/default/volumes",
                                {"name": "pv-disk0", "size_bytes": 1 << 20})
        assert status == 202, doc
        tasks.append(doc["task"])
        assert d.api("GET", "/v1/pools/default/volumes/pv-disk0")["attached_to"] is None
    finally:
        os.unlink(hold)
    for t in tasks:
        assert d.wait_task(t)["state"] == "succeeded", t
    [volume] = [disk["volume"] for disk in d.vm("pv")["disks"]]
    assert volume.startswith("default/pv-disk") and volume != "default/pv-disk0", volume
    assert d.api("GET", f"/v1/pools/default/volumes/{volume.split('/')[1]}")["attached_to"] == "pv"
    assert d.api("GET", "/v1/pools/default/volumes/pv-disk0")["attached_to"] is None
    d.task_ok("DELETE", "/v1/pools/default/volumes/pv-disk0")


def etag_of(d, path):
    """The ETag (a revision, quoted) GET answers for path."""
    c = UnixHTTPConnection(d.socket)
    try:
        c.request("GET", path)
        resp = c.getresponse()
        resp.read()
        assert resp.status == 200, (path, resp.status)
        return resp.getheader("ETag")
    finally:
        c.close()


def test_same_if_match_on_a_volume_patch_wins_once(fake_daemon):
    """Writers that read the same revision race their PATCH with it as
    If-Match: the compare happens where the volume is saved, so exactly one
    wins and the others get 412 (or 409 while the winner holds it)."""
    d = fake_daemon
    new_volume(d, "ifm")
    path = "/v1/pools/default/volumes/ifm"
    for i in range(5 * TRIALS):  # its window is narrow: more trials
        tag = etag_of(d, path)
        want = i % 2 == 0  # flips every trial
        replies = race(*[lambda: d.request("PATCH", path, {"shareable": want},
                                           headers={"If-Match": tag}) for _ in range(RACERS)])
        statuses = sorted(s for s, _ in replies)
        assert statuses.count(200) == 1, f"trial {i}: {statuses}"
        assert set(statuses) <= {200, 409, 412}, statuses
        assert d.api("GET", path)["shareable"] is want
        assert etag_of(d, path) != tag


def test_same_if_match_on_a_live_vm_patch_wins_once(fake_daemon):
    """The same for a running VM's vCPUs (a live change, in a task): the
    task compares the revision under the VM's job lock before it changes
    anything, so of the requests accepted only the first one's task
    succeeds; the others fail with precondition-failed (412) or were
    refused at once (412, or 409 while the winner holds the VM)."""
    d = fake_daemon
    d.task_ok("POST", "/v1/vms", {"name": "ifv", "memory_mib": 64, "networks": ["user"],
                                  "max_vcpus": 2})
    d.task_ok("POST", "/v1/vms/ifv/start")
    for i in range(TRIALS):
        tag = etag_of(d, "/v1/vms/ifv")
        vcpus = 2 if i % 2 == 0 else 1
        replies = race(*[lambda: d.request("PATCH", "/v1/vms/ifv", {"vcpus": vcpus},
                                           headers={"If-Match": tag}) for _ in range(RACERS)])
        wins = 0
        for status, doc in replies:
            if status != 202:
                assert status in (409, 412), (status, doc)
                continue
            task = d.wait_task(doc["task"], timeout=60)
            if task["state"] == "succeeded":
                wins += 1
            else:
                assert task["error"]["code"] == "precondition-failed", task
        assert wins == 1, f"trial {i}: {wins} PATCHes with If-Match {tag} won"
        assert d.vm("ifv")["vcpus"] == vcpus
