"""System tests of per-VM cloud-init settings (NoCloud seed): `vm create
--ci-*` makes a seed ISO (volume label cidata) in the VM's state directory
that QEMU has as a second, read-only CD-ROM (QMP query-block, asked while
vireod is down: it holds the monitor); its files, read back on the host with
xorriso, say what was set; `vm cloud-init set` remakes it with a new
instance-id, which a running VM gets in its seed drive (one started without
a seed, or on a driver that cannot, waits for its next start and the task
says so); bad input changes nothing; an image with "cloud_init": true
gives its VMs a default seed; the seed goes with the VM. The guest need not
boot: two QEMU starts, no guest boot wait."""

import ctypes
import json
import os
import shutil
import socket
import subprocess

import pytest

from vireo_harness import TEST_IMAGE, open_files, wait_until

_libcrypt = ctypes.CDLL("libcrypt.so.1")
_libcrypt.crypt.restype = ctypes.c_char_p
_libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]


def crypt_hash(password, setting):
    """crypt(3) of password with the salt (and scheme) of setting, as a
    guest's libc checks a password against its hash."""
    out = _libcrypt.crypt(password.encode(), setting.encode())
    return out.decode() if out else None

pytestmark = pytest.mark.skipif(not shutil.which("xorriso"), reason="needs xorriso")


def iso_files(iso, out):
    """The files of ISO iso, extracted to directory out, as {name: text},
    and the ISO's volume id."""
    out.mkdir()
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", "/", str(out)],
                   check=True, capture_output=True, timeout=60)
    p = subprocess.run(["xorriso", "-indev", str(iso), "-pvd_info"], check=True,
                       capture_output=True, text=True, timeout=60)
    volid = [l.split(":", 1)[1].strip() for l in p.stdout.splitlines()
             if l.startswith("Volume Id")][0]
    files = {f: (out / f).read_text() for f in os.listdir(out)}
    return files, volid


def qmp(path, command):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        f = s.makefile("rw")
        json.loads(f.readline())  # greeting
        for cmd in ("qmp_capabilities", command):
            f.write(json.dumps({"execute": cmd}) + "\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if "return" in msg or "error" in msg:
                    break
        return msg["return"]


def qemu_seed_files(daemon, pid):
    """The cloud-init seeds process pid has open, as /proc names them."""
    return sorted(f for f in open_files(pid, daemon.state_dir) if "cidata.iso" in f)


def ssh_key(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tester@vireo",
                    "-f", str(tmp_path / "id")], check=True, timeout=30)
    return tmp_path / "id.pub"


def test_seed_cdrom_set_and_bad_input(daemon, tmp_path):
    pub = ssh_key(tmp_path)
    key = pub.read_text().strip()
    daemon.cli("vm", "create", "ci1", "--memory", "128M", "--ci-user", "alice",
               "--ci-ssh-key", str(pub), "--ci-hostname", "ci-host",
               "--ci-network", "static:10.9.8.7/24,gw=10.9.8.1,dns=10.9.8.1")
    shown = daemon.api("GET", "/v1/vms/ci1/cloud-init")
    iid = shown["instance_id"]
    assert shown["settings"]["ssh_keys"] == [key], shown
    out = daemon.cli("vm", "cloud-init", "show", "ci1").stdout
    assert iid in out and "alice" in out and "static 10.9.8.7/24" in out, out

    daemon.cli("vm", "start", "ci1")
    vm = daemon.vm("ci1")
    if vm.get("pid"):
        daemon.qemu_pids.add(vm["pid"])
    seed = os.path.join(daemon.state_dir, "vms", vm["id"], "cidata.iso")
    files, volid = iso_files(seed, tmp_path / "seed1")
    assert volid == "cidata"
    assert sorted(files) == ["meta-data", "network-config", "user-data"], files
    assert files["meta-data"] == f'instance-id: "{iid}"\nlocal-hostname: "ci-host"\n'
    ud = files["user-data"]
    assert ud.startswith("#cloud-config\n") and '  - name: "alice"\n' in ud, ud
    assert f'      - "{key}"\n' in ud and 'hostname: "ci-host"' in ud, ud
    nc = files["network-config"]
    assert f'macaddress: "{vm["nics"][0]["mac"]}"' in nc and '"10.9.8.7/24"' in nc, nc
    assert 'via: "10.9.8.1"' in nc, nc

    # QEMU has it as a read-only CD-ROM of its own, beside no user CD-ROM.
    daemon.kill9()
    try:
        blocks = qmp(os.path.join(daemon.run_dir, "vms", vm["id"], "qmp.sock"), "query-block")
    finally:
        daemon.start()
    cidata = [b for b in blocks if b.get("qdev") == "cidata0" or b["device"] == "drive-cidata0"]
    assert len(cidata) == 1, blocks
    assert cidata[0]["removable"] and cidata[0]["inserted"]["ro"], cidata
    assert cidata[0]["inserted"]["file"] == seed, cidata

    # Changing the settings remakes the seed with another instance-id.
    daemon.cli("vm", "cloud-init", "set", "ci1", "--ci-hostname", "ci-other")
    again = daemon.api("GET", "/v1/vms/ci1/cloud-init")
    assert again["instance_id"] != iid
    assert again["settings"]["user"] == "alice"  # the others stay
    files, _ = iso_files(seed, tmp_path / "seed2")
    assert files["meta-data"] == (f'instance-id: "{again["instance_id"]}"\n'
                                  'local-hostname: "ci-other"\n'), files
    # The running QEMU has the new seed in its drive (the old file, replaced,
    # would read "(deleted)"), so a reboot inside the guest applies it.
    assert qemu_seed_files(daemon, vm["pid"]) == [seed]

    # Bad input: 400 naming the field; nothing changed, no VM half-made.
    err = daemon.api("PUT", "/v1/vms/ci1/cloud-init",
                     {"settings": {"user": "alice", "password_hash": "plain"}}, expect=400)
    assert "cloud_init.password_hash" in err["error"]["message"], err
    err = daemon.api("PUT", "/v1/vms/ci1/cloud-init",
                     {"settings": {"user_data": "runcmd: []"}}, expect=400)
    assert "#cloud-config" in err["error"]["message"], err
    assert daemon.api("GET", "/v1/vms/ci1/cloud-init")["instance_id"] == again["instance_id"]

    # The password hash is an admin's to read (GET .../cloud-init): vm show,
    # the list and the event stream, which viewers read, leave it out.
    hash_ = "$6$saltsalt$" + "A" * 86
    daemon.cli("vm", "cloud-init", "set", "ci1", "--ci-password-hash", hash_)
    assert daemon.api("GET", "/v1/vms/ci1/cloud-init")["settings"]["password_hash"] == hash_
    for vm_doc in (daemon.vm("ci1"), daemon.api("GET", "/v1/vms")["vms"][0]):
        assert vm_doc["cloud_init"]["user"] == "alice", vm_doc
        assert "password_hash" not in vm_doc["cloud_init"], vm_doc
    status, events = daemon.request("GET", "/v1/events?kind=vm&since=0&follow=false")
    assert status == 200 and '"cloud_init"' in events and hash_ not in events, events
    # A password given to the CLI is hashed there (SHA-512 crypt, a salt of
    # its own each time): vireod gets the hash only.
    daemon.cli("vm", "cloud-init", "set", "ci1", "--ci-password-file", "-", input="s3cret pw\n")
    got = daemon.api("GET", "/v1/vms/ci1/cloud-init")["settings"]["password_hash"]
    assert got.startswith("$6$") and crypt_hash("s3cret pw", got) == got, got
    assert crypt_hash("other", got) != got
    (tmp_path / "pw").write_text("s3cret pw\n")
    daemon.cli("vm", "cloud-init", "set", "ci1", "--ci-password-file", str(tmp_path / "pw"))
    again_hash = daemon.api("GET", "/v1/vms/ci1/cloud-init")["settings"]["password_hash"]
    assert again_hash != got and crypt_hash("s3cret pw", again_hash) == again_hash
    for bad, why in ((["--ci-password-file", "-", "--ci-password-hash", hash_], "give one"),
                     (["--ci-password-file", str(tmp_path / "none")], "No such file"),
                     (["--ci-ask-password"], "no terminal")):
        p = daemon.cli("vm", "cloud-init", "set", "ci1", *bad, check=False, input="x\n")
        assert p.returncode != 0 and why in p.stderr, (bad, p.stderr)
    assert daemon.api("GET", "/v1/vms/ci1/cloud-init")["settings"]["password_hash"] == again_hash
    (tmp_path / "priv").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    p = daemon.cli("vm", "create", "bad1", "--ci-ssh-key", str(tmp_path / "priv"), check=False)
    assert p.returncode != 0 and "not an ssh public key" in p.stderr, p
    p = daemon.cli("vm", "create", "bad2", "--ci-user", "Bad User", check=False)
    assert p.returncode != 0 and "cloud_init.user" in p.stderr, p
    err = daemon.api("POST", "/v1/vms", {"name": "bad3", "cloud_init": {
        "network": {"mode": "static", "address": "10.0.0.1"}}}, expect=400)
    assert "cloud_init.network.address" in err["error"]["message"], err
    names = [v["name"] for v in daemon.api("GET", "/v1/vms")["vms"]]
    assert names == ["ci1"], names

    # --none: no seed any more (the running VM's drive is emptied); settings
    # again: a new seed in the same drive; delete takes the VM's state (seed
    # included).
    daemon.cli("vm", "cloud-init", "set", "ci1", "--none")
    assert qemu_seed_files(daemon, vm["pid"]) == []
    assert daemon.api("GET", "/v1/vms/ci1/cloud-init")["settings"] is None
    assert not os.path.exists(seed)
    daemon.cli("vm", "cloud-init", "set", "ci1", "--ci-user", "bob")
    assert qemu_seed_files(daemon, vm["pid"]) == [seed]
    daemon.cli("vm", "stop", "ci1", "--force")
    daemon.cli("vm", "delete", "ci1")
    assert not os.path.exists(os.path.dirname(seed))


def test_image_wants_cloud_init(daemon):
    """An image whose image.json says "cloud_init": true gives VMs made from
    it a default seed (the VM's name as hostname); the default image not,
    and settings given to such a VM while it runs wait for its next start."""
    img = os.path.join(daemon.state_dir, "images", "ciimg")
    os.makedirs(img)
    meta = json.load(open(os.path.join(TEST_IMAGE, "image.json")))
    for key in ("disk", "kernel", "initrd"):
        os.symlink(os.path.join(os.path.abspath(TEST_IMAGE), meta[key]),
                   os.path.join(img, meta[key]))
    meta.update(name="ciimg", cloud_init=True)
    with open(os.path.join(img, "image.json"), "w") as f:
        json.dump(meta, f)
    daemon.stop()
    daemon.start()
    daemon.cli("vm", "create", "web7", "--image", "ciimg", "--memory", "128M")
    shown = daemon.api("GET", "/v1/vms/web7/cloud-init")
    assert shown["settings"] == {} and 'local-hostname: "web7"' in shown["meta_data"], shown
    daemon.cli("vm", "create", "plain1", "--memory", "128M")
    assert daemon.api("GET", "/v1/vms/plain1/cloud-init")["settings"] is None

    # Started without a seed, a VM has no seed drive: settings given while it
    # runs wait for its next start, and the task says so (no QEMU error).
    daemon.cli("vm", "start", "plain1")
    daemon.remember_qemu_pids()
    for settings, message in (({"user": "bob"}, "started without a cloud-init seed: the "
                                                 "settings apply at its next start"),
                              (None, None)):
        doc = daemon.api("PUT", "/v1/vms/plain1/cloud-init", {"settings": settings}, expect=202)
        task = daemon.wait_task(doc["task"])
        assert task["state"] == "succeeded", task
        assert (message in task["message"]) if message else task["message"] is None, task
    daemon.cli("vm", "stop", "plain1", "--force")


def test_running_vm_of_a_driver_without_seed_change(fake_daemon):
    """A driver that cannot change a running VM's seed (the fake one): the
    settings are saved and the task says they apply at the next start."""
    d = fake_daemon
    d.cli("vm", "create", "f1", "--memory", "64M", "--ci-user", "alice")
    d.cli("vm", "start", "f1")
    doc = d.api("PUT", "/v1/vms/f1/cloud-init", {"settings": {"user": "bob"}}, expect=202)
    task = d.wait_task(doc["task"])
    assert task["state"] == "succeeded", task
    assert task["message"] == ("the fake driver cannot change a running VM's cloud-init seed: "
                               "the settings apply at its next start"), task
    assert d.api("GET", "/v1/vms/f1/cloud-init")["settings"]["user"] == "bob"
