"""Images and backup records as store documents ("images/NAME",
"backups/ID"): written when an import or a backup completes, deleted with
the image or backup, in the store's change log; a state directory whose
images and backups have no documents (an older vireo) gets them adopted at
start, and documents whose files are gone are dropped at start. The store is
read from its SQLite file (STATE/vireo.db), as the API shows no revisions of
these documents."""

import json
import os
import shutil
import sqlite3
import subprocess

from vireo_harness import Daemon

MiB = 1 << 20


def docs(d, prefix):
    """{key: (value, mod_rev)} of the documents under prefix."""
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    try:
        rows = db.execute("SELECT key, value, mod_rev FROM documents WHERE key LIKE ?",
                          (prefix + "%",)).fetchall()
    finally:
        db.close()
    return {k: (json.loads(v), rev) for k, v, rev in rows}


def changes(d, key):
    """[(rev, "put" | "delete")] of key in the store's change log, oldest
    first (the log stores VoStoreOpKind: 0 put, 1 delete)."""
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    try:
        rows = db.execute("SELECT rev, kind FROM changes WHERE key = ? ORDER BY rev",
                          (key,)).fetchall()
        return [(rev, ("put", "delete")[kind]) for rev, kind in rows]
    finally:
        db.close()


def drop_docs(d, prefix):
    """Removes the documents under prefix, vireod stopped: the state of a
    vireo that kept images and backups only as files."""
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    try:
        with db:
            db.execute("DELETE FROM documents WHERE key LIKE ?", (prefix + "%",))
    finally:
        db.close()


def small_qcow2(tmp_path, name="src.qcow2", size=8 * MiB):
    path = str(tmp_path / name)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, str(size)], check=True,
                   timeout=60)
    return path


def images(d):
    return {i["name"]: i for i in d.api("GET", "/v1/images")["images"]}


def backup(d, vm):
    doc = d.api("POST", f"/v1/vms/{vm}/backups", {}, expect=202)
    task = d.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    return d.api("GET", f"/v1/backups/{task['message']}")


def backup_ids(d):
    return [b["id"] for b in d.api("GET", "/v1/backups")]


def test_image_document_follows_import_and_delete(fake_daemon, tmp_path):
    d = fake_daemon
    # The default image the harness put in place (a symlink) was adopted.
    assert "images/default" in docs(d, "images/")
    src = small_qcow2(tmp_path, size=24 * MiB)
    kernel = str(tmp_path / "vmlinux")
    with open(kernel, "wb") as f:
        f.write(b"k")
    d.task_ok("POST", "/v1/images", {"name": "imp", "import_path": src, "kernel_path": kernel,
                                     "cmdline": "console=ttyS0"})
    doc, rev = docs(d, "images/")["images/imp"]
    assert doc["name"] == "imp" and doc["format"] == "qcow2"
    assert doc["disk"] == "disk.qcow2" and doc["kernel"] == "vmlinux"
    assert doc["initrd"] is None and doc["cmdline"] == "console=ttyS0"
    assert doc["size_bytes"] == 24 * MiB and doc["created_at"] > 0
    # No host path in the document; the API resolves them on this host.
    assert "/" not in doc["disk"] + doc["kernel"]
    shown = images(d)["imp"]
    assert shown["disk"] == os.path.join(d.state_dir, "images", "imp", "disk.qcow2")
    assert shown["size_bytes"] == 24 * MiB and shown["used_by"] == 0
    assert changes(d, "images/imp") == [(rev, "put")]
    # A second import of the name is refused; the document stays as it was.
    status, err = d.request("POST", "/v1/images", {"name": "imp", "import_path": src})
    assert status == 409, err
    assert docs(d, "images/")["images/imp"][1] == rev
    d.api("DELETE", "/v1/images/imp")
    assert "images/imp" not in docs(d, "images/")
    assert not os.path.exists(os.path.join(d.state_dir, "images", "imp"))
    assert [k for _, k in changes(d, "images/imp")] == ["put", "delete"]
    assert "imp" not in images(d)
    status, _ = d.request("DELETE", "/v1/images/imp")
    assert status == 404
    # The name can be imported again: a new document, a new revision.
    d.task_ok("POST", "/v1/images", {"name": "imp", "import_path": src})
    assert docs(d, "images/")["images/imp"][1] > rev


def test_backup_document_follows_create_verify_and_delete(fake_daemon):
    d = fake_daemon
    d.cli("vm", "create", "bv")
    first = backup(d, "bv")
    key = f"backups/{first['id']}"
    doc, rev = docs(d, "backups/")[key]
    assert doc["pool"] == "backup" and doc["id"] == first["id"] and doc["vm"] == "bv"
    assert doc["disks"] == first["disks"] and doc["spec"] == first["spec"]
    # The pool keeps its record too (a pool may be shared between hosts).
    record_path = os.path.join(d.api("GET", "/v1/pools/backup")["path"], first["id"],
                               "backup.json")
    with open(record_path) as f:
        assert {**json.load(f), "pool": "backup"} == doc
    # A verify's result goes to the document as well, so the list shows it.
    d.task_ok("POST", f"/v1/backups/{first['id']}/verify", {})
    doc, rev2 = docs(d, "backups/")[key]
    assert rev2 > rev and doc["last_verify"]["ok"] is True
    assert [b for b in d.api("GET", "/v1/backups")
            if b["id"] == first["id"]][0]["last_verify"]["ok"] is True
    second = backup(d, "bv")
    assert backup_ids(d) == [first["id"], second["id"]]
    d.task_ok("DELETE", f"/v1/backups/{first['id']}")
    assert set(docs(d, "backups/")) == {f"backups/{second['id']}"}
    assert [k for _, k in changes(d, key)] == ["put", "put", "delete"]
    assert backup_ids(d) == [second["id"]]


def test_state_dir_without_documents_is_adopted_at_start(fake_daemon, tmp_path):
    """Images and backups that exist only as files (a state dir of a vireo
    before these documents, or a crash between the files and the document)
    are listed again after a start, as they were."""
    d = fake_daemon
    d.task_ok("POST", "/v1/images", {"name": "old", "import_path": small_qcow2(tmp_path)})
    d.cli("vm", "create", "av")
    ids = [backup(d, "av")["id"], backup(d, "av")["id"]]
    before_images = d.api("GET", "/v1/images")
    before_backups = d.api("GET", "/v1/backups")
    d.stop()
    drop_docs(d, "images/")
    drop_docs(d, "backups/")
    # And an image put in place by hand (as scripts/demo.sh builds one).
    hand = os.path.join(d.state_dir, "images", "by-hand")
    os.makedirs(hand)
    with open(os.path.join(hand, "disk.raw"), "wb") as f:
        f.truncate(4 * MiB)
    with open(os.path.join(hand, "image.json"), "w") as f:
        json.dump({"disk": "disk.raw", "format": "raw"}, f)
    d.start()
    assert set(docs(d, "images/")) == {"images/default", "images/old", "images/by-hand"}
    assert set(docs(d, "backups/")) == {f"backups/{i}" for i in ids}
    after = images(d)
    assert {n: i for n, i in after.items() if n != "by-hand"} == \
        {i["name"]: i for i in before_images["images"]}
    assert after["by-hand"]["size_bytes"] == 4 * MiB and after["by-hand"]["format"] == "raw"
    assert d.api("GET", "/v1/backups") == before_backups
    # A restart with the documents in place changes nothing.
    revs = {k: r for k, (_, r) in {**docs(d, "images/"), **docs(d, "backups/")}.items()}
    d.stop()
    d.start()
    assert revs == {k: r for k, (_, r) in {**docs(d, "images/"),
                                           **docs(d, "backups/")}.items()}


def test_documents_whose_files_vanished_are_dropped_at_start(fake_daemon, tmp_path):
    d = fake_daemon
    d.task_ok("POST", "/v1/images", {"name": "gone", "import_path": small_qcow2(tmp_path)})
    d.cli("vm", "create", "gv")
    keep, lost = backup(d, "gv"), backup(d, "gv")
    pool = d.api("GET", "/v1/pools/backup")["path"]
    d.stop()
    shutil.rmtree(os.path.join(pool, lost["id"]))
    shutil.rmtree(os.path.join(d.state_dir, "images", "gone"))
    d.start()
    assert backup_ids(d) == [keep["id"]]
    assert set(docs(d, "backups/")) == {f"backups/{keep['id']}"}
    status, _ = d.request("GET", f"/v1/backups/{lost['id']}")
    assert status == 404
    assert "gone" not in images(d) and "images/gone" not in docs(d, "images/")
    assert [k for _, k in changes(d, "images/gone")][-1] == "delete"
    # A record changed in the pool (by another host sharing it): the pool's
    # file is the truth, the document follows it at the next start.
    record_path = os.path.join(pool, keep["id"], "backup.json")
    with open(record_path) as f:
        record = json.load(f)
    record["last_verify"] = {"ok": False, "at": "2026-01-01T00:00:00Z", "files": 1,
                             "problems": ["checked elsewhere"]}
    d.stop()
    with open(record_path, "w") as f:
        json.dump(record, f)
    d.start()
    assert d.api("GET", "/v1/backups")[0]["last_verify"]["problems"] == ["checked elsewhere"]


def test_backups_of_a_pool_mounted_late_stay_listed(fake_daemon):
    """A backup pool on a share that is not mounted yet when vireod starts
    is an empty directory (the mount point): its backups stay listed, as
    they do when the directory cannot be read, and are there again once it
    is mounted."""
    d = fake_daemon
    d.cli("vm", "create", "mv")
    ids = [backup(d, "mv")["id"], backup(d, "mv")["id"]]
    pool = d.api("GET", "/v1/pools/backup")["path"]
    mounted = pool + ".mounted"
    d.stop()
    os.rename(pool, mounted)
    os.mkdir(pool)  # the empty mount point
    try:
        d.start()
        assert backup_ids(d) == ids
        assert set(docs(d, "backups/")) == {f"backups/{i}" for i in ids}
        assert "not mounted yet?" in d.log()
        d.stop()
    finally:
        os.rmdir(pool)
        os.rename(mounted, pool)
    d.start()
    assert backup_ids(d) == ids
    d.task_ok("POST", f"/v1/backups/{ids[0]}/verify", {})


def test_an_image_directory_missing_a_named_file_is_not_adopted(fake_daemon):
    """Adoption at start takes an image directory only when every file its
    image.json names is there (disk, kernel, initrd): one half removed is
    not an image."""
    d = fake_daemon
    d.stop()
    for name, kernel_there in (("half", False), ("whole", True)):
        top = os.path.join(d.state_dir, "images", name)
        os.makedirs(top)
        with open(os.path.join(top, "disk.raw"), "wb") as f:
            f.truncate(4 * MiB)
        if kernel_there:
            with open(os.path.join(top, "vmlinux"), "wb") as f:
                f.write(b"kernel")
        with open(os.path.join(top, "image.json"), "w") as f:
            json.dump({"disk": "disk.raw", "kernel": "vmlinux", "cmdline": "console=ttyS0"}, f)
    d.start()
    assert "whole" in images(d) and "half" not in images(d)
    assert "images/half" not in docs(d, "images/")
    assert "half is not adopted: its kernel" in d.log()


def test_a_crash_between_import_files_and_document_adopts_the_image(tmp_path):
    """The import's files are complete once renamed into place; the document
    is written right after. Killed in between (simulated: the document
    removed while the files stay), the next start adopts the image."""
    d = Daemon(driver="fake")
    try:
        d.task_ok("POST", "/v1/images", {"name": "late", "import_path": small_qcow2(tmp_path)})
        d.kill9()
        drop_docs(d, "images/late")
        d.start()
        assert "late" in images(d)
        assert "images/late" in docs(d, "images/")
        # A delete cut short after moving the files aside: the leftover goes.
        aside = os.path.join(d.state_dir, "images", ".deleting-late")
        d.kill9()
        os.rename(os.path.join(d.state_dir, "images", "late"), aside)
        d.start()
        assert not os.path.exists(aside)
        assert "late" not in images(d) and "images/late" not in docs(d, "images/")
    finally:
        d.cleanup()


def test_image_and_backup_changes_are_in_the_event_stream(fake_daemon, tmp_path):
    from test_events import history
    d = fake_daemon
    d.task_ok("POST", "/v1/images", {"name": "ev", "import_path": small_qcow2(tmp_path)})
    d.cli("vm", "create", "evm")
    b = backup(d, "evm")
    d.api("DELETE", "/v1/images/ev")
    d.task_ok("DELETE", f"/v1/backups/{b['id']}")
    got = [(rid, data["id"], data["action"]) for rid, _, data in history(d, "kind=image,backup")]
    ids = [int(rid) for rid, _, _ in got]
    assert ids == sorted(ids)
    mine = [(i, a) for _, i, a in got if i in ("ev", b["id"])]
    assert mine == [("ev", "put"), (b["id"], "put"), ("ev", "delete"), (b["id"], "delete")]
    put = [data for _, _, data in history(d, "kind=image&object=ev")][0]
    assert put["object"]["disk"] == "disk.qcow2"


def test_image_and_backup_etag_and_if_match(fake_daemon, tmp_path):
    """Images and backups are documents, so they carry ETag (their revision)
    and honour If-Match on every change: a stale one gets 412 and changes
    nothing, the current one goes through."""
    from test_events import etag
    d = fake_daemon
    d.task_ok("POST", "/v1/images", {"name": "tagged", "import_path": small_qcow2(tmp_path)})
    shown = d.api("GET", "/v1/images/tagged")
    assert shown == images(d)["tagged"]
    tag = etag(d, "/v1/images/tagged")
    rev = docs(d, "images/")["images/tagged"][1]
    assert tag == f'"{rev}"'
    stale = f'"{rev - 1}"'
    status, err = d.request("DELETE", "/v1/images/tagged", headers={"If-Match": stale})
    assert status == 412 and err["error"]["code"] == "precondition-failed", err
    assert "tagged" in images(d)
    status, _ = d.request("GET", "/v1/images/nope")
    assert status == 404
    status, _ = d.request("DELETE", "/v1/images/tagged", headers={"If-Match": tag})
    assert status == 200 and "tagged" not in images(d)

    d.cli("vm", "create", "bt")
    b = backup(d, "bt")
    tag = etag(d, f"/v1/backups/{b['id']}")
    rev = docs(d, "backups/")["backups/" + b["id"]][1]
    assert tag == f'"{rev}"'
    stale = f'"{rev - 1}"'
    for method, path in (("POST", f"/v1/backups/{b['id']}/verify"),
                         ("POST", f"/v1/backups/{b['id']}/restore"),
                         ("DELETE", f"/v1/backups/{b['id']}")):
        status, err = d.request(method, path, {} if method == "POST" else None,
                                headers={"If-Match": stale})
        assert status == 412 and err["error"]["code"] == "precondition-failed", (path, err)
    assert backup_ids(d) == [b["id"]] and etag(d, f"/v1/backups/{b['id']}") == tag
    # Current: the verify goes through and moves the revision on.
    status, doc = d.request("POST", f"/v1/backups/{b['id']}/verify", {},
                            headers={"If-Match": tag})
    assert status == 202, doc
    assert d.wait_task(doc["task"])["state"] == "succeeded"
    assert etag(d, f"/v1/backups/{b['id']}") != tag
