"""Images in a cluster (docs/cluster.md, "Images and pools"): an image one
host imported is copied to another host on first use, over the peer API
(manifest with sizes and SHA-256, then each file; files first, then the
document): a VM created from h1's image pinned to h2 gets the image copied
to h2 (document and files, digests equal) and boots a real TCG guest there;
two concurrent creates of a missing image copy it once; a transfer that
does not match its manifest (a test hook in vireod makes the sender's
digest wrong) leaves nothing on h2 and fails the create with a message
saying so. The file routes answer peers only, and only the files an
image's record names. Image and pool lists on h2 show h1's own image and
pool with their host; another host's local pool is shown and its volumes
listed from any host (forwarded)."""

import hashlib
import json
import os
import subprocess
import threading

from vireo_harness import BOOT_MARKER, TEST_IMAGE, wait_until
from test_cluster_placement import form

CORRUPT = "broken"  # VIREO_TEST_IMAGE_COPY_CORRUPT: its manifest lies about the disk


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def import_image(h, name, body):
    doc = h.api("POST", "/v1/images", {"name": name, **body}, expect=202)
    task = h.wait_task(doc["task"], timeout=240)
    assert task["state"] == "succeeded", task


def small_disk(c, name):
    path = os.path.join(c.tmp, f"{name}.raw")
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20))
    return path


def create_on(h, name, image, expect=202):
    return h.api("POST", "/v1/vms", {"name": name, "image": image, "host": h.name,
                                     "memory_mib": 128}, expect=expect)


def image_files(h, name):
    d = os.path.join(h.state_dir, "images", name)
    with open(os.path.join(d, "image.json")) as f:
        meta = json.load(f)
    files = ["image.json"] + [meta[k] for k in ("disk", "kernel", "initrd") if meta.get(k)]
    return {f: sha256(os.path.join(d, f)) for f in files}


def leftovers(h, name):
    top = os.path.join(h.state_dir, "images")
    return sorted(e for e in os.listdir(top) if name in e)


def test_images_copied_on_first_use(cluster, monkeypatch):
    monkeypatch.setenv("VIREO_TEST_IMAGE_COPY_CORRUPT", CORRUPT)
    c = cluster(2, driver="qemu", listen=False, image=False)
    form(c)
    h1, h2 = c.hosts
    with open(os.path.join(TEST_IMAGE, "image.json")) as f:
        meta = json.load(f)
    import_image(h1, "boot", {"import_path": os.path.join(TEST_IMAGE, meta["disk"]),
                              "kernel_path": os.path.join(TEST_IMAGE, meta["kernel"]),
                              "initrd_path": os.path.join(TEST_IMAGE, meta["initrd"]),
                              "cmdline": meta["cmdline"]})
    import_image(h1, "tiny", {"import_path": small_disk(c, "tiny")})
    import_image(h1, CORRUPT, {"import_path": small_disk(c, CORRUPT)})
    assert leftovers(h2, "boot") == []

    # The file routes: peers only (not the local socket), named files only.
    status, doc = h1.request("GET", "/v1/images/boot/files")
    assert status == 401, doc
    status, doc = h1.https("GET", "/v1/images/boot/files", via=h2)
    assert status == 200, doc
    assert {f["name"] for f in doc["files"]} == {"image.json", "disk.qcow2", "vmlinux",
                                                 "initrd.img"}
    for bad in ("..%2Fboot%2Fimage.json", "..", "secret", "%2Fetc%2Fpasswd", ".build-x"):
        status, doc = h1.https("GET", f"/v1/images/boot/files/{bad}", via=h2)
        assert status in (400, 404), (bad, status, doc)
    status, doc = h1.https("GET", "/v1/images/nope/files", via=h2)
    assert status == 404, doc

    # Lists on h2 show h1's own image and pool, with their host.
    images = h2.api("GET", "/v1/images")["images"]
    boot = next(i for i in images if i["name"] == "boot")
    assert boot["hosts"] == ["h1"], boot
    out = h2.cli("image", "list").stdout
    assert "HOST" in out.splitlines()[0] and any(
        line.split()[0] == "boot" and "h1" in line for line in out.splitlines()[1:]), out
    pools = h2.api("GET", "/v1/pools")["pools"]
    assert {(p["name"], p.get("host")) for p in pools} >= {("default", "h1"),
                                                           ("default", "h2")}, pools
    out = h2.cli("pool", "list").stdout
    assert "HOST" in out.splitlines()[0], out
    shown = h2.api("GET", "/v1/pools/default?host=h1")
    assert shown["host"] == "h1", shown

    # A VM from h1's image pinned to h2: the image is copied first (files
    # equal, its document there), then the VM is made and boots.
    doc = create_on(h2, "c1", "boot")
    task = h2.wait_task(doc["task"], timeout=240)
    assert task["state"] == "succeeded", task
    assert image_files(h2, "boot") == image_files(h1, "boot")
    shown = h2.api("GET", "/v1/images/boot")
    assert shown["disk"].startswith(os.path.join(h2.state_dir, "images", "boot")), shown
    assert leftovers(h2, "boot") == ["boot"]
    assert "copying image 'boot' from host 'h1'" in h2.log()
    # The create's task showed the copy as a step with progress.
    status, events = h2.request("GET", f"/v1/events?kind=operation&object={task['id']}"
                                "&since=0&follow=false")
    assert status == 200, events
    assert "copying image 'boot' from host 'h1' (" in events, events
    images = h2.api("GET", "/v1/images")["images"]
    assert next(i for i in images if i["name"] == "boot")["hosts"] == ["h1", "h2"], images
    h2.cli("vm", "start", "c1")
    h2.wait_console("c1", BOOT_MARKER, timeout=240)
    vm = h2.vm("c1")
    if vm.get("pid"):
        h2.qemu_pids.add(vm["pid"])
    h2.cli("vm", "stop", "c1", "--force")

    # Two creates at once of an image h2 lacks: one copy.
    docs = [None, None]

    def make(i):
        docs[i] = create_on(h2, f"t{i}", "tiny")

    threads = [threading.Thread(target=make, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for d in docs:
        task = h2.wait_task(d["task"])
        assert task["state"] == "succeeded", task
    assert h2.log().count("images: image 'tiny' copied from host 'h1'") == 1
    assert image_files(h2, "tiny") == image_files(h1, "tiny")

    # A transfer that does not match its manifest: nothing is left, the
    # create fails saying why.
    doc = create_on(h2, "x1", CORRUPT)
    task = h2.wait_task(doc["task"])
    assert task["state"] == "failed", task
    assert "cannot copy image 'broken' from host 'h1'" in task["error"]["message"], task
    assert "SHA-256" in task["error"]["message"], task
    assert leftovers(h2, CORRUPT) == []
    status, _ = h2.request("GET", "/v1/vms/x1")
    assert status == 404
    images = h2.api("GET", "/v1/images")["images"]
    assert next(i for i in images if i["name"] == CORRUPT)["hosts"] == ["h1"], images

    # Another host's local pool, from h1: shown and its volumes listed by
    # h2 (forwarded): with --host, or by a name only h2 has.
    vols = h1.api("GET", "/v1/volumes?pool=default&host=h2")["volumes"]
    assert {v["attached_to"] for v in vols} >= {"c1", "t0", "t1"}, vols
    assert h1.api("GET", "/v1/volumes?pool=default")["volumes"] == []
    out = h1.cli("volume", "list", "default", "--host", "h2").stdout
    assert "c1" in out, out
    only = os.path.join(h2.tmp, "only2")
    os.makedirs(only)
    h2.api("POST", "/v1/pools", {"name": "only2", "path": only}, expect=201)
    shown = h1.api("GET", "/v1/pools/only2")
    assert shown["host"] == "h2" and shown["path"] == only, shown
    assert h1.cli("pool", "show", "default", "--host", "h2").stdout.count("h2") >= 1
    status, doc = h1.request("GET", "/v1/pools/default?host=nope")
    assert status == 404 and "nope" in doc["error"]["message"], doc


def test_image_copy_refusals_say_what_to_fix(cluster):
    """What a host cannot copy or delete is said with the file, host and
    what to do: a symlink in the sending host's image directory is never
    sent (the manifest names it; the create on the other host fails with
    it and leaves nothing); deleting on h2 an image only h1 has names h1;
    the file routes refuse the local socket even with X-Vireo-Forwarded."""
    c = cluster(2, listen=False, image=False)
    form(c)
    h1, h2 = c.hosts
    import_image(h1, "tiny", {"import_path": small_disk(c, "tiny")})

    status, doc = h1.request("GET", "/v1/images/tiny/files",
                             headers={"X-Vireo-Forwarded": "1"})
    assert status == 401, doc
    status, doc = h1.request("GET", "/v1/images/tiny/files/image.json",
                             headers={"X-Vireo-Forwarded": "1"})
    assert status == 401, doc

    # The image is h1's: h2 cannot delete it, and says where it is.
    status, doc = h2.request("DELETE", "/v1/images/tiny")
    assert status == 404, doc
    msg = doc["error"]["message"]
    assert "host 'h1'" in msg and "not on this host" in msg, msg
    status, doc = h2.request("DELETE", "/v1/images/nothing")
    assert status == 404 and doc["error"]["message"] == "image 'nothing' does not exist", doc

    # Its disk made a symlink on h1: never sent, named in every message.
    d = os.path.join(h1.state_dir, "images", "tiny")
    os.rename(os.path.join(d, "disk.qcow2"), os.path.join(d, "disk.real"))
    os.symlink("disk.real", os.path.join(d, "disk.qcow2"))
    status, doc = h1.https("GET", "/v1/images/tiny/files", via=h2)
    assert status == 500, doc
    msg = doc["error"]["message"]
    assert "'disk.qcow2'" in msg and "symbolic link" in msg, msg
    status, doc = h1.https("GET", "/v1/images/tiny/files/disk.qcow2", via=h2)
    assert status == 404, doc
    doc = create_on(h2, "s1", "tiny")
    task = h2.wait_task(doc["task"])
    assert task["state"] == "failed", task
    msg = task["error"]["message"]
    assert "cannot copy image 'tiny' from host 'h1'" in msg, msg
    assert "'disk.qcow2'" in msg and "symbolic link" in msg, msg
    assert leftovers(h2, "tiny") == []
