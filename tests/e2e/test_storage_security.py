"""System tests of what vireod refuses to trust in storage: a raw volume whose
guest wrote a qcow2 header, backing names that leave the pools, pools nested
in vireo's directories or in each other, world-readable image files, other
hosts' partial backups in a shared pool, tampered backups (backing files and
kernels outside the backup and the images), and input that used to fail
late (a multi-line kernel command line, an odd qcow2 size)."""

import json
import os
import stat
import subprocess

from vireo_harness import UnixHTTPConnection

MiB = 1 << 20


def volume_path(d, key):
    pool, name = key.split("/")
    return d.api("GET", f"/v1/pools/{pool}/volumes/{name}")["path"]


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True, timeout=60)


def get_bounded(d, path, timeout=20):
    """GET with a bounded wait: a vireod stuck on a FIFO makes this raise."""
    conn = UnixHTTPConnection(d.socket, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def unblock(fifo):
    """Lets a reader stuck opening fifo go on (it then reads EOF)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


# ---- defect 3: headers read only as the recorded format, chains kept inside --

def test_raw_volume_with_a_qcow2_header_is_not_followed(fake_daemon):
    d = fake_daemon
    d.task_ok("POST", "/v1/pools/default/volumes",
              {"name": "guestraw", "format": "raw", "size_bytes": MiB})
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "q", "size_bytes": MiB})
    fifo = os.path.join(d.tmp, "fifo")
    os.mkfifo(fifo)
    # What a guest can write into its own raw disk: a qcow2 header naming the FIFO.
    header = os.path.join(d.tmp, "header.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", fifo, header, "1M")
    raw = volume_path(d, "default/guestraw")
    with open(header, "rb") as src, open(raw, "r+b") as dst:
        dst.write(src.read(64 * 1024))
    # A qcow2 volume whose header names a file outside every pool.
    q = volume_path(d, "default/q")
    qemu_img("rebase", "-q", "-u", "-f", "qcow2", "-F", "raw", "-b", fifo, q)
    try:
        status, doc = get_bounded(d, "/v1/volumes")
        assert status == 200, doc
        vols = {v["key"]: v for v in doc["volumes"]}
        assert vols["default/guestraw"]["format"] == "raw"
        assert vols["default/guestraw"]["backing"] == []
        assert vols["default/guestraw"]["virtual_size_bytes"] == MiB
        # Reported, not opened.
        assert vols["default/q"]["backing"] == [{"path": fifo, "format": "untrusted"}], vols
        status, one = get_bounded(d, "/v1/pools/default/volumes/guestraw")
        assert status == 200 and one["backing"] == []
        # A linked clone of an image (its directory a symlink here) is followed.
        d.cli("vm", "create", "lc")
        status, one = get_bounded(d, "/v1/pools/default/volumes/lc-disk0")
        base = os.path.join(d.state_dir, "images", "default", "disk.raw")
        assert one["backing"] == [{"path": base, "format": "raw"}], one
    finally:
        unblock(fifo)


# ---- defect 5: pools do not nest in vireo's directories or in each other ----

def test_pools_may_not_nest(fake_daemon):
    d = fake_daemon
    inside_state = os.path.join(d.state_dir, "mine")
    inside_run = os.path.join(d.run_dir, "mine")
    outer = os.path.join(d.tmp, "outer")
    inner = os.path.join(outer, "pool", "inner")
    link = os.path.join(d.tmp, "sneaky")
    for path in (inside_state, inside_run, inner):
        os.makedirs(path)
    os.symlink(inside_state, link)  # resolved: still inside the state dir
    d.api("POST", "/v1/pools", {"name": "p", "path": os.path.join(outer, "pool")}, expect=201)
    def names():
        return sorted(p["name"] for p in d.api("GET", "/v1/pools")["pools"])
    before = names()
    for name, path, fragment in (("s", inside_state, "state directory"),
                                 ("r", inside_run, "run directory"),
                                 ("l", link, "state directory"),
                                 ("i", inner, "inside pool 'p'"),
                                 ("o", outer, "contains pool 'p'"),
                                 ("b", inside_state, "state directory")):
        body = {"name": name, "path": path}
        if name == "b":
            body["type"] = "backup"
        status, doc = d.request("POST", "/v1/pools", body)
        assert status == 400 and fragment in doc["error"]["message"], (name, doc)
        assert doc["error"]["code"] == "invalid-argument"
    assert names() == before


# ---- defect 6: image files are root's alone ------------------------------------

def private(path):
    mode = os.stat(path).st_mode
    return stat.S_IMODE(mode) & 0o077 == 0, oct(stat.S_IMODE(mode))


def test_volume_image_and_backup_files_are_private(fake_daemon):
    d = fake_daemon
    src = os.path.join(d.tmp, "src.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", src, "4M")
    os.chmod(src, 0o644)
    kernel = os.path.join(d.tmp, "vmlinux")
    with open(kernel, "wb") as f:
        f.write(b"not really a kernel")
    os.chmod(kernel, 0o644)
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "cq", "size_bytes": MiB})
    d.task_ok("POST", "/v1/pools/default/volumes",
              {"name": "cr", "format": "raw", "size_bytes": MiB})
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "imp", "import_path": src})
    d.cli("volume", "import", "default/up", src, "--upload")
    d.task_ok("POST", "/v1/pools/default/volumes/cq/clone", {"target": "default/full"})
    d.task_ok("POST", "/v1/pools/default/volumes/cq/clone",
              {"target": "default/linked", "linked": True})
    d.task_ok("POST", "/v1/images", {"name": "img", "import_path": src, "kernel_path": kernel,
                                     "cmdline": "console=ttyS0"})
    d.cli("vm", "create", "v", "--image", "img")
    d.task_ok("POST", "/v1/vms/v/template", {"image": "tmpl"})
    b = d.api("POST", "/v1/vms/v/backups", {}, expect=202)
    task = d.wait_task(b["task"], timeout=120)
    assert task["state"] == "succeeded", task
    backup = d.api("GET", f"/v1/backups/{task['message']}")
    bdir = os.path.join(d.api("GET", "/v1/pools/backup")["path"], backup["id"])
    d.task_ok("POST", f"/v1/backups/{backup['id']}/restore", {"as": "v2"})
    files = [volume_path(d, k) for k in ("default/cq", "default/cr", "default/imp",
                                         "default/up", "default/full", "default/linked",
                                         "default/v-disk0", "default/v2-disk0")]
    for image in ("img", "tmpl"):
        top = os.path.join(d.state_dir, "images", image)
        files += [os.path.join(top, n) for n in os.listdir(top)]
    files += [os.path.join(bdir, n) for n in os.listdir(bdir)]
    assert len(files) >= 8 + 6 + 2
    bad = {f: m for f, (ok, m) in ((f, private(f)) for f in files) if not ok}
    assert bad == {}, bad


# ---- defect 15: a restart removes only this host's partial backups ---------------

def test_restart_removes_only_this_hosts_partial_backups(fake_daemon):
    d = fake_daemon
    pool = os.path.join(d.tmp, "shared-backups")
    os.makedirs(pool)
    d.api("POST", "/v1/pools", {"name": "shared", "type": "backup", "path": pool}, expect=201)
    foreign = [".partial-0123456789abcdef-vm-20260101-000000-0000",
               ".deleting-0123456789abcdef-vm-x"]
    for name in foreign:
        os.makedirs(os.path.join(pool, name))
        with open(os.path.join(pool, name, "disk0.qcow2"), "wb") as f:
            f.write(b"another host's backup, in progress")
    d.stop()
    d.start()
    assert sorted(os.listdir(pool)) == sorted(foreign)
    with open(os.path.join(d.state_dir, "host-id")) as f:
        host = f.read().strip()
    assert host and host != "0123456789abcdef"
    own = [f".partial-{host}-vm-20260101-000000-0001", f".deleting-{host}-vm-y"]
    for name in own:
        os.makedirs(os.path.join(pool, name))
    d.stop()
    d.start()
    with open(os.path.join(d.state_dir, "host-id")) as f:
        assert f.read().strip() == host  # stable
    assert sorted(os.listdir(pool)) == sorted(foreign)


# ---- defect 16: input refused up front -------------------------------------------

def test_multi_line_cmdline_is_refused_at_import(fake_daemon):
    d = fake_daemon
    src = os.path.join(d.tmp, "src.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", src, "1M")
    kernel = os.path.join(d.tmp, "vmlinux")
    with open(kernel, "wb") as f:
        f.write(b"k")
    for cmdline in ("console=ttyS0\nrw", "a\rb", "tab\there", "bell\x07"):
        status, doc = d.request("POST", "/v1/images", {"name": "ml", "import_path": src,
                                                       "kernel_path": kernel,
                                                       "cmdline": cmdline})
        assert status == 400 and "cmdline" in doc["error"]["message"], (cmdline, doc)
    assert not os.path.exists(os.path.join(d.state_dir, "images", "ml"))
    assert "ml" not in {i["name"] for i in d.api("GET", "/v1/images")["images"]}


def test_qcow2_resize_to_an_odd_size_is_refused(fake_daemon):
    d = fake_daemon
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "odd", "size_bytes": MiB})
    status, doc = d.request("POST", "/v1/pools/default/volumes/odd/resize",
                            {"size_bytes": 2 * MiB + 1})
    assert status == 400 and "512" in doc["error"]["message"], doc
    assert doc["error"]["code"] == "invalid-argument"
    vol = d.api("GET", "/v1/pools/default/volumes/odd")
    assert vol["virtual_size_bytes"] == MiB
    d.task_ok("POST", "/v1/pools/default/volumes/odd/resize", {"size_bytes": 2 * MiB + 512})
    # A raw volume takes any size.
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "oddraw", "format": "raw",
                                                    "size_bytes": MiB})
    d.task_ok("POST", "/v1/pools/default/volumes/oddraw/resize", {"size_bytes": MiB + 1})


# ---- defect 1: a tampered backup is never restored ---------------------------------

def backup(d, vm, **body):
    doc = d.api("POST", f"/v1/vms/{vm}/backups", body, expect=202)
    task = d.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    return d.api("GET", f"/v1/backups/{task['message']}")


def test_tampered_backups_are_refused(daemon):
    d = daemon
    d.cli("vm", "create", "tam", "--memory", "128M")
    full = backup(d, "tam")
    disk = d.api("GET", "/v1/vms/tam/disks")["disks"][0]["path"]
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x44 0 1M", disk], check=True,
                   capture_output=True, timeout=60)
    inc = backup(d, "tam", incremental=True)
    assert inc["kind"] == "incremental"
    pool = d.api("GET", "/v1/pools/backup")["path"]
    full_file = os.path.join(pool, full["id"], full["disks"][0]["file"])
    inc_file = os.path.join(pool, inc["id"], inc["disks"][0]["file"])
    secret = os.path.join(d.tmp, "shadow")
    with open(secret, "wb") as f:
        f.write(b"root:secret-hash:19000:0:99999:7:::\n" * 100)
    volumes = sorted(v["key"] for v in d.api("GET", "/v1/volumes")["volumes"])

    def refused(backup_id, body, fragment):
        status, doc = d.request("POST", f"/v1/backups/{backup_id}/restore", body)
        assert status == 409 and fragment in doc["error"]["message"], doc
        assert sorted(v["key"] for v in d.api("GET", "/v1/volumes")["volumes"]) == volumes
        assert [v["name"] for v in d.api("GET", "/v1/vms")["vms"]] == ["tam"]

    # The incremental's file backed by a host file instead of its parent's.
    qemu_img("rebase", "-q", "-u", "-f", "qcow2", "-F", "raw", "-b", secret, inc_file)
    refused(inc["id"], {"as": "copy"}, "backing file")
    refused(inc["id"], {}, "backing file")  # nor over the original
    # The parent's file, three levels down the chain, likewise.
    qemu_img("rebase", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b",
             f"../{full['id']}/{full['disks'][0]['file']}", inc_file)
    qemu_img("rebase", "-q", "-u", "-f", "qcow2", "-F", "raw", "-b", secret, full_file)
    refused(inc["id"], {"as": "copy"}, "backing file")
    refused(full["id"], {"as": "copy"}, "backing file")
    qemu_img("rebase", "-q", "-u", "-f", "qcow2", "-b", "", full_file)
    # A file replaced by a symlink to a host file.
    aside = full_file + ".aside"
    os.rename(full_file, aside)
    os.symlink(secret, full_file)
    refused(full["id"], {"as": "copy"}, "not a regular file inside")
    os.unlink(full_file)
    os.rename(aside, full_file)
    # A stored definition that boots a host file as its kernel or initrd.
    record_path = os.path.join(pool, full["id"], "backup.json")
    with open(record_path) as f:
        original = f.read()
    for key in ("kernel", "initrd"):
        record = json.loads(original)
        record["spec"][key] = secret
        if key == "initrd" and not record["spec"].get("kernel"):
            continue
        with open(record_path, "w") as f:
            json.dump(record, f)
        refused(full["id"], {"as": "copy"}, key)
    with open(record_path, "w") as f:
        f.write(original)
    # Untampered, both restore.
    for b, name in ((full, "copy1"), (inc, "copy2")):
        doc = d.api("POST", f"/v1/backups/{b['id']}/restore", {"as": name}, expect=202)
        task = d.wait_task(doc["task"], timeout=300)
        assert task["state"] == "succeeded", task


def test_a_volume_file_swapped_for_a_symlink_out_of_its_pool_is_not_resolved(fake_daemon):
    """A volume's file checked inside its pool when it was made may be
    swapped later for a symlink to a file elsewhere: the VM's disk is
    resolved again at every start (and hot-plug), and such a file is refused
    then, naming the volume."""
    d = fake_daemon
    d.cli("vm", "create", "swap", "--memory", "64M")
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "swapdata", "size_bytes": MiB})
    d.cli("vm", "disk", "add", "swap", "default/swapdata")
    outside = os.path.join(d.tmp, "outside.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", outside, "1M")
    path = volume_path(d, "default/swapdata")
    os.unlink(path)
    os.symlink(outside, path)
    status, doc = d.request("POST", "/v1/vms/swap/start")
    assert status == 202, doc
    task = d.wait_task(doc["task"])
    assert task["state"] == "failed", task
    msg = task["error"]["message"]
    assert "default/swapdata" in msg and "outside its pool" in msg, msg
    assert d.vm("swap")["state"] != "running"
    # Put back as a file of its pool: it starts.
    os.unlink(path)
    qemu_img("create", "-q", "-f", "qcow2", path, "1M")
    d.task_ok("POST", "/v1/vms/swap/start")
    assert d.vm("swap")["state"] == "running"
