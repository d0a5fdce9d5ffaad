"""Operations (issue 10): tasks are operation documents that outlive vireod.

A kill -9 of vireod during a long image import: after the restart the task
shows failed with error `interrupted` (naming what the start-up sweep
removed) and nothing half-made remains. Cancel of a running image import and
volume clone (their qemu-img is made slow: it reads its source through
QEMU's throttle filter while the file SLOW exists in the wrapper's dir) and
of a queued backup leaves nothing (directories and API objects compared
before and after) and the task shows `cancelled`; a finished task or one
that cannot be cancelled answers 409, an unknown id 404. Fake driver, no
guest; every wait is bounded."""

import os
import signal

import pytest

from vireo_harness import OwnProcs, pid_alive, slow_qemu_img, wait_until
from test_crash_recovery import big_raw, convert_child, pool_files

MiB = 1 << 20

# Slow only while {dir}/SLOW exists.
SWITCHED_QEMU_IMG = slow_qemu_img(only_while="SLOW")


@pytest.fixture
def ops(fake_daemon):
    d = fake_daemon
    d.fault_dir = os.path.join(d.tmp, "faults")
    os.makedirs(d.fault_dir)
    d.wrap_dir = d.wrap_tool("qemu-img", SWITCHED_QEMU_IMG, {"VIREO_FAKE_FAULTS": d.fault_dir})
    d.helpers = OwnProcs(d.tmp)  # held by pidfd: a pid reused later is left alone
    try:
        yield d
    finally:
        for pid in d.helpers:
            d.helpers.signal(pid, signal.SIGKILL)
        d.helpers.close()


def slow(d, on=True):
    path = os.path.join(d.wrap_dir, "SLOW")
    if on:
        open(path, "w").close()
    elif os.path.exists(path):
        os.unlink(path)


def images_dir(d):
    return sorted(os.listdir(os.path.join(d.state_dir, "images")))


def image_names(d):
    return sorted(i["name"] for i in d.api("GET", "/v1/images")["images"])


def volume_keys(d):
    return sorted(f"{v['pool']}/{v['name']}" for v in d.api("GET", "/v1/volumes")["volumes"])


def task(d, tid):
    return d.api("GET", f"/v1/tasks/{tid}")


def wait_task_state(d, tid, state, timeout=60):
    return wait_until(lambda: task(d, tid)["state"] == state and task(d, tid), timeout,
                      what=f"task {tid} to be {state}")


def running_convert(d):
    child = wait_until(lambda: convert_child(d), 60, what="vireod's qemu-img convert")
    d.helpers.add(child)
    return child


def test_kill9_during_image_import_shows_interrupted(ops, tmp_path):
    d = ops
    slow(d)
    before_dir, before_images = images_dir(d), image_names(d)
    src = big_raw(tmp_path)
    t = d.api("POST", "/v1/images", {"name": "big", "import_path": str(src)}, expect=202)["task"]
    assert t["requested_by"]["pid"] > 0 and t["requested_by"]["uid"] == os.getuid()
    child = running_convert(d)
    assert task(d, t["id"])["state"] == "running"
    d.kill9()
    wait_until(lambda: not pid_alive(child), 30, what="qemu-img to die with vireod")
    d.start()
    after = task(d, t["id"])
    assert after["state"] == "failed", after
    assert after["error"]["code"] == "interrupted", after
    assert ".build-big" in after["error"]["message"], after
    assert after["finished_at"] is not None and after["progress"] < 100
    assert images_dir(d) == before_dir and image_names(d) == before_images
    # the CLI shows it too, and the list has it
    out = d.cli("task", "show", t["id"]).stdout
    assert "failed" in out and "interrupted" in out
    assert t["id"] in [x["id"] for x in d.api("GET", "/v1/tasks")["tasks"]]


def test_cancel_running_image_import_leaves_nothing(ops, tmp_path):
    d = ops
    slow(d)
    before_dir, before_images = images_dir(d), image_names(d)
    src = big_raw(tmp_path)
    t = d.api("POST", "/v1/images", {"name": "big", "import_path": str(src)}, expect=202)["task"]
    child = running_convert(d)
    doc = d.api("POST", f"/v1/tasks/{t['id']}/cancel", expect=202)["task"]
    assert doc["cancel_requested"] is True
    end = wait_task_state(d, t["id"], "cancelled")
    assert end["error"] is None and end["finished_at"] is not None
    wait_until(lambda: not pid_alive(child), 30, what="the cancelled qemu-img to die")
    assert images_dir(d) == before_dir and image_names(d) == before_images
    # finished: 409 on both routes; the name is free again
    for method, path in (("POST", f"/v1/tasks/{t['id']}/cancel"), ("DELETE", f"/v1/tasks/{t['id']}")):
        err = d.api(method, path, expect=409)
        assert "cancelled already" in err["error"]["message"]
    slow(d, False)
    d.task_ok("POST", "/v1/images", {"name": "big", "import_path": str(src)})


def test_cancel_running_volume_clone_leaves_nothing(ops, tmp_path):
    d = ops
    src = big_raw(tmp_path, 64 * MiB)
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "src", "import_path": str(src),
                                                     "format": "raw"})
    before_files, before_volumes = pool_files(d), volume_keys(d)
    slow(d)
    t = d.api("POST", "/v1/pools/default/volumes/src/clone", {"target": "default/copy"},
              expect=202)["task"]
    assert t["kind"] == "volume-clone" and t["target_id"] == "default/copy"
    child = running_convert(d)
    d.api("DELETE", f"/v1/tasks/{t['id']}", expect=202)
    wait_task_state(d, t["id"], "cancelled")
    wait_until(lambda: not pid_alive(child), 30, what="the cancelled qemu-img to die")
    assert pool_files(d) == before_files and volume_keys(d) == before_volumes
    # the source is free again: it can be cloned (quickly now)
    slow(d, False)
    d.task_ok("POST", "/v1/pools/default/volumes/src/clone", {"target": "default/copy"})


def test_cancel_queued_backup_and_uncancellable_stop(ops):
    d = ops
    d.cli("vm", "create", "bk")
    d.cli("vm", "start", "bk")
    before = d.api("GET", "/v1/backups")
    # A stop the guest ignores holds the VM's queue; the backup waits behind it.
    open(os.path.join(d.fault_dir, "acpi-ignored"), "w").close()
    # (after timeout_s the stop forces the VM off)
    stop = d.api("POST", "/v1/vms/bk/stop", {"timeout_s": 15}, expect=202)["task"]
    d.wait_state("bk", "stopping")
    backup = d.api("POST", "/v1/vms/bk/backups", {}, expect=202)["task"]
    assert task(d, backup["id"])["state"] == "queued" and backup["cancellable"] is True
    # a VM stop cannot be cancelled: 409 naming why
    err = d.api("POST", f"/v1/tasks/{stop['id']}/cancel", expect=409)["error"]
    assert err["code"] == "invalid-state" and "cannot be cancelled" in err["message"]
    # the queued backup is cancelled at once
    doc = d.api("POST", f"/v1/tasks/{backup['id']}/cancel", expect=200)["task"]
    assert doc["state"] == "cancelled" and doc["started_at"] is None
    out = d.cli("task", "show", backup["id"]).stdout
    assert "cancelled" in out
    # unknown id: 404 (API and CLI)
    d.api("POST", "/v1/tasks/0b7c0b7c-0b7c-4b7c-8b7c-0b7c0b7c0b7c/cancel", expect=404)
    p = d.cli("task", "cancel", "0b7c0b7c-0b7c-4b7c-8b7c-0b7c0b7c0b7c", check=False)
    assert p.returncode != 0 and "does not exist" in p.stderr
    wait_task_state(d, stop["id"], "succeeded")
    assert d.vm("bk")["state"] == "stopped"
    assert d.api("GET", "/v1/backups") == before
    assert task(d, backup["id"])["state"] == "cancelled"
