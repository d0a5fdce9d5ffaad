"""The storage commands of the CLI, end to end against vireod (fake driver:
no guest needed to check that pools, volumes, images and VM disks are
created, shown, refused and removed as the user asked)."""

import os
import subprocess

MiB = 1 << 20


def test_pool_volume_disk_commands(fake_daemon, tmp_path):
    d = fake_daemon
    pool_dir = tmp_path / "fast"
    pool_dir.mkdir()
    d.cli("pool", "create", "fast", "--path", str(pool_dir))
    pools = {p["name"]: p for p in d.cli_json("pool", "list")["pools"]}
    assert pools["fast"]["path"] == str(pool_dir) and pools["fast"]["volumes"] == 0
    assert "default" in pools

    d.cli("volume", "create", "fast/data", "--size", "16M")
    vol = d.cli_json("volume", "show", "fast/data")
    assert vol["virtual_size_bytes"] == 16 * MiB and vol["format"] == "qcow2"
    assert os.path.exists(pool_dir / "data.qcow2")

    d.cli("volume", "resize", "fast/data", "--size", "32M")
    assert d.cli_json("volume", "show", "fast/data")["virtual_size_bytes"] == 32 * MiB
    p = d.cli("volume", "resize", "fast/data", "--size", "8M", check=False)
    assert p.returncode == 1 and "allow-shrink" in p.stderr.replace("_", "-")

    d.cli("volume", "clone", "fast/data", "fast/data-copy")
    d.cli("volume", "clone", "fast/data", "fast/data-thin", "--linked")
    thin = d.cli_json("volume", "show", "fast/data-thin")
    assert thin["backing_volume"] == "fast/data"
    p = d.cli("volume", "delete", "fast/data", check=False)
    assert p.returncode == 1 and "linked clone" in p.stderr

    d.cli("vm", "create", "box")
    d.cli("vm", "disk", "add", "box", "fast/data-copy")
    d.cli("vm", "disk", "add", "box", "--size", "8M", "--pool", "fast")
    disks = d.cli_json("vm", "disk", "list", "box")["disks"]
    assert [x["volume"] for x in disks][:2] == ["default/box-disk0", "fast/data-copy"]
    assert len(disks) == 3 and disks[2]["owned"] is True
    table = d.cli("vm", "disk", "list", "box").stdout
    assert "fast/data-copy" in table

    # Attached: cannot be deleted; nor can the pool while it holds volumes.
    p = d.cli("volume", "delete", "fast/data-copy", check=False)
    assert p.returncode == 1 and "box" in p.stderr
    p = d.cli("pool", "delete", "fast", check=False)
    assert p.returncode == 1 and "volume" in p.stderr

    # The boot disk stays; another disk can be detached (its volume is kept).
    p = d.cli("vm", "disk", "remove", "box", "0", check=False)
    assert p.returncode != 0 and "boot" in p.stderr
    d.cli("vm", "disk", "remove", "box", "1")
    assert d.cli_json("volume", "show", "fast/data-copy")["attached_to"] is None

    # Deleting the VM deletes the disks made for it, not the one attached by name.
    added = disks[2]["volume"]
    d.cli("vm", "delete", "box")
    keys = {v["key"] for v in d.cli_json("volume", "list")["volumes"]}
    assert "default/box-disk0" not in keys and added not in keys
    assert {"fast/data", "fast/data-copy", "fast/data-thin"} <= keys


def test_import_download_and_image_commands(fake_daemon, tmp_path):
    d = fake_daemon
    src = tmp_path / "disk.vdi"
    subprocess.run(["qemu-img", "create", "-f", "vdi", str(src), "8M"], check=True,
                   capture_output=True)
    d.cli("volume", "import", "default/imp", str(src))
    d.cli("volume", "import", "default/imp2", str(src), "--upload")
    for name in ("imp", "imp2"):
        vol = d.cli_json("volume", "show", f"default/{name}")
        assert vol["format"] == "qcow2" and vol["virtual_size_bytes"] == 8 * MiB
    out = tmp_path / "out.qcow2"
    d.cli("volume", "download", "default/imp2", str(out))
    cmp = subprocess.run(["qemu-img", "compare", str(src), str(out)], capture_output=True)
    assert cmp.returncode == 0, cmp.stdout
    p = d.cli("volume", "download", "default/imp2", str(out), check=False)
    assert p.returncode != 0 and "exists" in p.stderr

    # An image from a volume file, a VM from it, a template of that VM.
    kernel = os.path.join(d.state_dir, "images", "default", "vmlinux")
    d.cli("image", "import", "small", str(src), "--kernel", kernel, "--cmdline", "console=ttyS0")
    images = {i["name"]: i for i in d.cli_json("image", "list")["images"]}
    assert images["small"]["format"] == "qcow2" and images["small"]["size_bytes"] == 8 * MiB
    d.cli("vm", "create", "from-small", "--image", "small")
    p = d.cli("image", "delete", "small", check=False)
    assert p.returncode == 1 and "used by" in p.stderr
    d.cli("vm", "template", "from-small", "golden")
    assert "golden" in {i["name"] for i in d.cli_json("image", "list")["images"]}
    d.cli("vm", "delete", "from-small")
    d.cli("image", "delete", "small")
    assert "small" not in {i["name"] for i in d.cli_json("image", "list")["images"]}


def test_import_refuses_images_that_point_at_host_files(fake_daemon, tmp_path):
    d = fake_daemon
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"top secret" * 1000)
    evil = tmp_path / "evil.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-b", str(secret), "-F", "raw",
                    str(evil)], check=True, capture_output=True)
    for extra in ([], ["--upload"]):
        p = d.cli("volume", "import", "default/evil", str(evil), *extra, check=False)
        assert p.returncode == 1 and "another file" in p.stderr, p.stderr
    assert "default/evil" not in {v["key"] for v in d.cli_json("volume", "list")["volumes"]}
    leftovers = [n for n in os.listdir(os.path.join(d.state_dir, "pools", "default"))
                 if n.startswith(".upload") or n.startswith("evil")]
    assert leftovers == []


def test_network_and_nic_commands(fake_daemon):
    d = fake_daemon
    d.cli("network", "create", "lab", "--type", "isolated", "--subnet", "10.77.0.0/24")
    nets = {n["name"]: n for n in d.cli_json("network", "list")["networks"]}
    assert nets["lab"]["subnet"] == "10.77.0.0/24" and nets["lab"]["state"] == "active"
    d.cli("vm", "create", "nicky", "--network", "default", "--network", "user")
    nics = d.cli_json("vm", "nic", "list", "nicky")["nics"]
    assert [n["network"] for n in nics] == ["default", "user"]
    d.cli("vm", "nic", "add", "nicky", "--network", "lab")
    table = d.cli("vm", "nic", "list", "nicky").stdout.splitlines()
    assert len(table) == 4 and "lab" in table[3]
    p = d.cli("network", "delete", "lab", check=False)
    assert p.returncode == 1 and "nicky" in p.stderr
    d.cli("vm", "nic", "remove", "nicky", "2")
    d.cli("network", "delete", "lab")
    assert "lab" not in {n["name"] for n in d.cli_json("network", "list")["networks"]}
    p = d.cli("network", "create", "bad", "--type", "nat", "--subnet", "10.1.2.3/24", check=False)
    assert p.returncode == 1 and "10.1.2.0/24" in p.stderr
