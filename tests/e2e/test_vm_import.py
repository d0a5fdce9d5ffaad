"""System tests of VM import: an OVA made here (the default test image's
disk converted to a streamOptimized VMDK, an OVF written by hand, a SHA-256
manifest, a ustar tar) is imported with the image's kernel and boots to the
guest's marker with the descriptor's vCPUs and memory (in QEMU's argv and
as the guest counts them: the one booted guest of this file); a libvirt
domain XML with a disk, a CD-ROM, a NIC, VNC and a sound card becomes a VM
(checked through its document, not booted), with a warning for what is not
mapped. Refusals: a bad digest, a path in a tar
member, a disk the OVA lacks, absurd memory, an unknown network, and a
corrupt second disk, after which no volume and no VM are left. Also: an
OVF stating EFI makes a UEFI VM with its NVRAM, and two imports of one name
at once leave one VM and only its volumes. With the fake driver: vireod
_exiting (a fault point) mid-import or mid-create leaves, after its next
start, no volume, scratch directory or VM of it, and the task interrupted;
a CD-ROM's ISO (domain XML and OVA) becomes an iso volume in the VM's drive,
one that cannot be had (not in the OVA, a FIFO) an empty drive and a warning;
an all-zero MAC is refused; one domain imported on two hosts of a cluster
at once keeps its MAC on one VM only."""

import hashlib
import io
import os
import re
import sqlite3
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from vireo_harness import BOOT_MARKER, TEST_IMAGE, Daemon, wait_until

OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
          xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
          xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>{files}</References>
  <DiskSection><Info>disks</Info>{disks}</DiskSection>
  <NetworkSection><Info>nets</Info><Network ovf:name="VM Network"/></NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>a VM</Info>
    <Name>{name}</Name>
    <OperatingSystemSection ovf:id="96"><Info>os</Info><Description>Debian</Description></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>hardware</Info>
      <Item><rasd:ElementName>2 CPUs</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>{memory}</rasd:VirtualQuantity></Item>
      {disk_items}
      <Item><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>eth0</rasd:ElementName>
        <rasd:InstanceID>9</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item><rasd:ElementName>sound</rasd:ElementName><rasd:InstanceID>10</rasd:InstanceID>
        <rasd:ResourceType>35</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""

VMDK_FORMAT = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"


def ovf_text(name, disks, memory=192):
    """disks: [(file, capacity_bytes)]."""
    files = "".join(f'<File ovf:id="file{i}" ovf:href="{f}"/>' for i, (f, _) in enumerate(disks))
    descs = "".join(f'<Disk ovf:diskId="d{i}" ovf:fileRef="file{i}" ovf:capacity="{c}" '
                    f'ovf:format="{VMDK_FORMAT}"/>' for i, (_, c) in enumerate(disks))
    items = "".join(f'<Item><rasd:ElementName>disk{i}</rasd:ElementName>'
                    f'<rasd:HostResource>ovf:/disk/d{i}</rasd:HostResource>'
                    f'<rasd:InstanceID>{3 + i}</rasd:InstanceID>'
                    f'<rasd:ResourceType>17</rasd:ResourceType></Item>'
                    for i in range(len(disks)))
    return OVF.format(name=name, files=files, disks=descs, disk_items=items, memory=memory)


def make_ova(path, ovf, members, manifest=True, digest_override=None, sign=None,
             after_signing=None):
    """members: [(arcname, bytes or file path)]; the manifest lists the OVF
    and every member (digest_override: {arcname: hex} to lie); sign: (key,
    certificate PEM) to add vm.cert, the manifest's SHA-256 signature and
    the certificate; after_signing: the manifest's text -> the text put in
    the OVA (to alter it after it was signed)."""
    def data_of(src):
        if isinstance(src, bytes):
            return src
        with open(src, "rb") as f:
            return f.read()
    entries = [("vm.ovf", ovf.encode())] + [(n, data_of(s)) for n, s in members]
    if manifest:
        lines = []
        for n, data in entries:
            digest = (digest_override or {}).get(n, hashlib.sha256(data).hexdigest())
            lines.append(f"SHA256({n})= {digest}\n")
        mf = "".join(lines).encode()
        if sign:
            key, pem = sign
            signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=mf,
                                       capture_output=True, check=True).stdout
            with open(pem) as f:
                cert = f"SHA256(vm.mf)= {signature.hex()}\n{f.read()}"
            entries.append(("vm.cert", cert.encode()))
        entries.append(("vm.mf", after_signing(mf) if after_signing else mf))
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for n, data in entries:
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def domain_with_mac(tmp_path, name, mac, disk=None):
    """A libvirt domain NAME (64 MiB, a qcow2 disk: disk, else a new one of
    8 MiB, and a user NIC with MAC mac) at tmp_path/NAME.xml: its path."""
    if disk is None:
        disk = str(tmp_path / f"{name}.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "8M"], check=True)
    xml = str(tmp_path / f"{name}.xml")
    with open(xml, "w") as f:
        f.write(f"<domain><name>{name}</name><memory unit='MiB'>64</memory><devices>"
                f"<disk type='file' device='disk'><source file='{disk}'/></disk>"
                f"<interface type='user'><mac address='{mac}'/></interface></devices></domain>")
    return xml


def volume_keys(d):
    return {v["key"] for v in d.api("GET", "/v1/volumes")["volumes"]}


def error_of(d, body):
    status, doc = d.request("POST", "/v1/vm-imports", body)
    return status, doc.get("error", {}).get("message", "") if isinstance(doc, dict) else doc


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("import"))
    vmdk = os.path.join(tmp, "root.vmdk")
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized",
                    os.path.join(TEST_IMAGE, "disk.raw"), vmdk], check=True)
    d = Daemon()
    try:
        yield d, tmp, vmdk
    finally:
        d.cleanup()


def test_ova_import_boots(env):
    d, tmp, vmdk = env
    size = os.path.getsize(os.path.join(TEST_IMAGE, "disk.raw"))
    ova = make_ova(os.path.join(tmp, "app.ova"), ovf_text("app", [("root.vmdk", size)]),
                   [("root.vmdk", vmdk)])
    before = volume_keys(d)
    out = d.cli("vm", "import-ova", ova, "--network", "default", "--kernel-image", "default")
    assert "2 vCPU(s), 192 MiB" in out.stderr, out
    assert "warning: OVF item 'sound' (resource type 35) is not mapped" in out.stderr, out
    vm = d.vm("app")
    assert vm["state"] == "defined" and vm["vcpus"] == 2 and vm["memory_mib"] == 192, vm
    assert [k["volume"] for k in vm["disks"]] == ["default/app-disk0"], vm["disks"]
    assert [n["network"] for n in vm["nics"]] == ["default"], vm["nics"]
    assert volume_keys(d) == before | {"default/app-disk0"}
    vol = d.api("GET", "/v1/pools/default/volumes/app-disk0")
    assert vol["format"] == "qcow2" and vol["virtual_size_bytes"] == size, vol
    d.cli("vm", "start", "app")
    d.wait_console("app", BOOT_MARKER, timeout=120)
    vm = d.vm("app")
    if vm.get("pid"):
        d.qemu_pids.add(vm["pid"])
    # QEMU runs it with the descriptor's memory and CPUs
    with open(f"/proc/{vm['pid']}/cmdline", "rb") as f:
        argv = f.read().decode().split("\0")
    assert argv[argv.index("-m") + 1].split(",")[0] == "192", argv
    assert "maxcpus=2" in argv[argv.index("-smp") + 1], argv
    # ... and the guest has them: 2 CPUs online, 192 MiB less what its
    # kernel keeps for itself.
    out = d.guest("app", "echo cpus=$(cat /sys/devices/system/cpu/online); "
                         "grep MemTotal /proc/meminfo")
    assert "cpus=0-1" in out, out
    mem_kib = int(re.search(r"MemTotal:\s+(\d+) kB", out).group(1))
    assert 128 * 1024 < mem_kib <= 192 * 1024, out
    d.cli("vm", "stop", "app", "--force")
    d.wait_state("app", "stopped")
    # the same name again is refused at once
    status, msg = error_of(d, {"source": "ova", "path": ova})
    assert status == 409 and "already exists" in msg, (status, msg)


def test_ova_refusals_leave_nothing(env):
    d, tmp, vmdk = env
    size = os.path.getsize(os.path.join(TEST_IMAGE, "disk.raw"))
    before_vols = volume_keys(d)
    before_vms = {v["name"] for v in d.api("GET", "/v1/vms")["vms"]}

    # a digest that does not match the disk: the task fails, nothing is made
    ova = make_ova(os.path.join(tmp, "baddigest.ova"), ovf_text("bd", [("root.vmdk", size)]),
                   [("root.vmdk", vmdk)], digest_override={"root.vmdk": "0" * 64})
    out = d.cli("vm", "import-ova", ova, "--network", "default", check=False)
    assert out.returncode != 0 and "digest of 'root.vmdk' is not the one in the manifest" \
        in out.stderr, out

    # a tar member with a path: refused at once (400)
    ova = make_ova(os.path.join(tmp, "escape.ova"), ovf_text("esc", [("root.vmdk", size)]),
                   [("root.vmdk", vmdk), ("../evil", b"x")])
    status, msg = error_of(d, {"source": "ova", "path": ova, "network": "default"})
    assert status == 400 and "'../evil' has a path" in msg, (status, msg)
    # and an OVF naming a file with a path
    ova = make_ova(os.path.join(tmp, "escape2.ova"), ovf_text("esc", [("../root.vmdk", size)]),
                   [("root.vmdk", vmdk)])
    status, msg = error_of(d, {"source": "ova", "path": ova, "network": "default"})
    assert status == 400 and "not a plain file name" in msg, (status, msg)

    # a disk the OVA does not have
    ova = make_ova(os.path.join(tmp, "missing.ova"),
                   ovf_text("miss", [("root.vmdk", size), ("data.vmdk", size)]),
                   [("root.vmdk", vmdk)])
    status, msg = error_of(d, {"source": "ova", "path": ova, "network": "default"})
    assert status == 400 and "'data.vmdk' named by the descriptor is not in the OVA" in msg, \
        (status, msg)

    # absurd memory (1 PiB)
    ova = make_ova(os.path.join(tmp, "huge.ova"),
                   ovf_text("huge", [("root.vmdk", size)], memory=1 << 30),
                   [("root.vmdk", vmdk)])
    status, msg = error_of(d, {"source": "ova", "path": ova, "network": "default"})
    assert status == 400 and "memory" in msg and "4 TiB" in msg, (status, msg)

    # less memory than a VM may have (32 MiB): refused at once, by the VM's rules
    ova = make_ova(os.path.join(tmp, "tiny.ova"),
                   ovf_text("tiny", [("root.vmdk", size)], memory=16),
                   [("root.vmdk", vmdk)])
    status, msg = error_of(d, {"source": "ova", "path": ova, "network": "default"})
    assert status == 400 and "memory: 16 MiB is out of range" in msg, (status, msg)

    # the NIC's network is not a vireo network, and no --network
    ova = make_ova(os.path.join(tmp, "nonet.ova"), ovf_text("nonet", [("root.vmdk", size)]),
                   [("root.vmdk", vmdk)])
    out = d.cli("vm", "import-ova", ova, check=False)
    assert out.returncode != 0 and "'VM Network', which is not a vireo network: pass " \
        "--network" in out.stderr, out

    # a corrupt second disk (its digest right): the first disk's volume,
    # made already, goes again
    ova = make_ova(os.path.join(tmp, "corrupt.ova"),
                   ovf_text("corrupt", [("root.vmdk", size), ("data.vmdk", size)]),
                   [("root.vmdk", vmdk), ("data.vmdk", b"KDMV" + b"\xff" * 4096)])
    out = d.cli("vm", "import-ova", ova, "--network", "default", check=False)
    assert out.returncode != 0 and "cannot import VM 'corrupt'" in out.stderr \
        and "data.vmdk" in out.stderr, out

    assert volume_keys(d) == before_vols
    assert {v["name"] for v in d.api("GET", "/v1/vms")["vms"]} == before_vms
    leftovers = os.listdir(os.path.join(d.state_dir, "imports"))
    assert leftovers == [], leftovers


def signing_keys(tmp):
    """A CA and a vendor's certificate it issued, made by openssl in tmp:
    (CA PEM, vendor key, vendor PEM)."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=tmp, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "3", "-subj", "/CN=Test-CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "vendor.key", "-out",
            "vendor.csr", "-subj", "/O=Vendor/CN=appliances")
    openssl("x509", "-req", "-in", "vendor.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "vendor.pem", "-days", "3")
    return tuple(os.path.join(tmp, f) for f in ("ca.pem", "vendor.key", "vendor.pem"))


def test_signed_ova_imports_and_tampered_is_refused(env):
    """A signed OVA (manifest signed by a vendor certificate a CA issued)
    imports with --ca and says who signed it; without --ca its signer is
    not trusted; one whose disk was swapped and manifest rewritten after
    signing is refused at once, as are a member the manifest leaves out and
    a malformed manifest (400, nothing made); an unsigned OVA is refused
    with a CA given (the .cert stripped) and imports with a warning
    without."""
    d, tmp, _ = env
    ca, key, pem = signing_keys(tmp)
    disk, other = os.path.join(tmp, "s.vmdk"), os.path.join(tmp, "o.vmdk")
    for f, size in ((disk, "1M"), (other, "2M")):
        subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", "-o",
                        "subformat=streamOptimized", f, size], check=True)
    before_vols = volume_keys(d)

    ova = make_ova(os.path.join(tmp, "signed.ova"), ovf_text("signed", [("s.vmdk", 1 << 20)]),
                   [("s.vmdk", disk)], sign=(key, pem))
    status, msg = error_of(d, {"source": "ova", "path": ova, "network": "user"})
    assert status == 400 and "the signer of 'vm.cert' (CN=appliances,O=Vendor) is not " \
        "trusted" in msg and "--ca" in msg, (status, msg)
    out = d.cli("vm", "import-ova", ova, "--network", "user", "--ca", ca)
    assert "signed by: CN=appliances,O=Vendor" in out.stderr, out
    assert "not signed" not in out.stderr, out
    assert d.vm("signed")["disks"][0]["volume"] == "default/signed-disk0"

    # the disk swapped for another and the manifest rewritten to match it
    with open(disk, "rb") as f:
        old = hashlib.sha256(f.read()).hexdigest()
    with open(other, "rb") as f:
        new = hashlib.sha256(f.read()).hexdigest()
    ova = make_ova(os.path.join(tmp, "tampered.ova"), ovf_text("tamp", [("s.vmdk", 1 << 20)]),
                   [("s.vmdk", other)], sign=(key, pem),
                   digest_override={"s.vmdk": old},
                   after_signing=lambda mf: mf.replace(old.encode(), new.encode()))
    status, msg = error_of(d, {"source": "ova", "path": ova, "network": "user", "ca": ca})
    assert status == 400 and "the signature in 'vm.cert' does not match the manifest " \
        "'vm.mf'" in msg, (status, msg)
    # (unsigned) a member the manifest does not list; a malformed manifest
    ova = make_ova(os.path.join(tmp, "extra.ova"), ovf_text("extra", [("s.vmdk", 1 << 20)]),
                   [("s.vmdk", disk)],
                   after_signing=lambda mf: mf.replace(b"SHA256(s.vmdk)", b"SHA256(x.vmdk)"))
    status, msg = error_of(d, {"source": "ova", "path": ova, "network": "user"})
    assert status == 400 and "the manifest 'vm.mf' does not list 's.vmdk'" in msg, (status, msg)
    ova = make_ova(os.path.join(tmp, "badmf.ova"), ovf_text("badmf", [("s.vmdk", 1 << 20)]),
                   [("s.vmdk", disk)], after_signing=lambda mf: b"MD5(s.vmdk)= 00\n" + mf)
    status, msg = error_of(d, {"source": "ova", "path": ova, "network": "user"})
    assert status == 400 and "the manifest 'vm.mf' is malformed: manifest line 1" in msg, \
        (status, msg)
    # a member no disk copies out (an NVRAM file) is digested too: the task fails
    ova = make_ova(os.path.join(tmp, "nvram.ova"), ovf_text("nvr", [("s.vmdk", 1 << 20)]),
                   [("s.vmdk", disk), ("vm.nvram", b"vars")],
                   digest_override={"vm.nvram": "0" * 64})
    out = d.cli("vm", "import-ova", ova, "--network", "user", check=False)
    assert out.returncode != 0 and "the SHA256 digest of 'vm.nvram' is not the one in the " \
        "manifest" in out.stderr, out
    assert volume_keys(d) == before_vols | {"default/signed-disk0"}

    ova = make_ova(os.path.join(tmp, "unsigned.ova"), ovf_text("unsig", [("s.vmdk", 1 << 20)]),
                   [("s.vmdk", disk)])
    status, msg = error_of(d, {"source": "ova", "path": ova, "network": "user", "ca": ca})
    assert status == 400 and "OVA: it is not signed (no .cert), but ca" in msg, (status, msg)
    status, answer = d.request("POST", "/v1/vm-imports", {"source": "ova", "path": ova,
                                                          "network": "user"})
    assert status == 202 and "signed_by" not in answer["import"], answer
    task = d.wait_task(answer["task"])
    assert task["state"] == "succeeded", task
    assert "the OVA is not signed (no .cert): its manifest's digests are checked, not who " \
        "made it" in task["result"]["warnings"], task


DOMAIN = """<domain type='kvm'>
  <name>{name}</name>
  <uuid>5f4b6a1e-8d44-4bde-9b8c-3c1f6a9f0c11</uuid>
  <memory unit='KiB'>131072</memory>
  <currentMemory unit='KiB'>131072</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-8.2'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/><apic/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:cc'/>
      <source network='{network}'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'><target port='0'/></serial>
    <graphics type='vnc' port='-1' autoport='yes'/>
    <sound model='ich9'/>
  </devices>
</domain>
"""


def test_libvirt_import(env):
    d, tmp, _ = env
    disk = os.path.join(tmp, "lv.qcow2")
    subprocess.run(["qemu-img", "convert", "-O", "qcow2",
                    os.path.join(TEST_IMAGE, "disk.raw"), disk], check=True)
    xml = os.path.join(tmp, "lv.xml")
    with open(xml, "w") as f:
        f.write(DOMAIN.format(name="lv", disk=disk, network="default"))
    out = d.cli("vm", "import-libvirt", xml, "--kernel-image", "default")
    assert "warning: device <sound> is not imported" in out.stderr, out
    vm = d.vm("lv")
    assert vm["state"] == "defined" and vm["vcpus"] == 1 and vm["memory_mib"] == 128, vm
    assert vm["display"] == "vga" and vm["cdrom"] == {}, vm
    assert [n["network"] for n in vm["nics"]] == ["default"], vm["nics"]
    # The NIC keeps its MAC (DHCP reservations and guests' own records name it).
    assert [n["mac"] for n in vm["nics"]] == ["52:54:00:aa:bb:cc"], vm["nics"]
    assert "MAC" not in out.stderr, out.stderr
    assert [k["volume"] for k in vm["disks"]] == ["default/lv-disk0"], vm["disks"]
    assert vm["kernel"] == {"image": "default"}, vm
    # the source file is copied, not moved
    assert os.path.exists(disk)

    # The same domain again under another name: its MAC is lv's now, so its
    # NIC gets a new one, and the import says so.
    small = os.path.join(tmp, "lv-small.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", small, "8M"], check=True)
    with open(xml, "w") as f:
        f.write(DOMAIN.format(name="lv-copy", disk=small, network="default")
                .replace("52:54:00:aa:bb:cc", "52:54:00:AA:BB:CC"))
    out = d.cli("vm", "import-libvirt", xml)
    assert "NIC 1 gets a new MAC address (52:54:00:AA:BB:CC is in use on this host)" \
        in out.stderr, out.stderr
    copy = d.vm("lv-copy")
    assert copy["nics"][0]["mac"].lower() != "52:54:00:aa:bb:cc", copy["nics"]
    d.wait_task(d.api("DELETE", "/v1/vms/lv-copy", expect=202)["task"])

    # a network vireo does not have: refused, naming what to pass
    with open(xml, "w") as f:
        f.write(DOMAIN.format(name="lv2", disk=disk, network="lan0"))
    status, msg = error_of(d, {"source": "libvirt", "path": xml})
    assert status == 400 and "'lan0'" in msg and "--network" in msg, (status, msg)
    # not a domain at all
    with open(xml, "w") as f:
        f.write("<domain><name>x</name><memory>1")
    status, msg = error_of(d, {"source": "libvirt", "path": xml})
    assert status == 400 and "not well-formed XML" in msg, (status, msg)


def test_libvirt_disk_with_backing_file_refused(env):
    """A domain XML stating qcow2 for a disk whose backing file is a host
    file (a secret): refused at once (qemu-img must not read the backing
    file into a volume), nothing made."""
    d, tmp, _ = env
    secret = os.path.join(tmp, "secret.raw")
    with open(secret, "wb") as f:
        f.write(b"root:$6$secret-hash:19000:0:99999:7:::\n".ljust(65536, b"\0"))
    disk = os.path.join(tmp, "overlay.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", disk],
                   check=True)
    xml = os.path.join(tmp, "backing.xml")
    with open(xml, "w") as f:
        f.write(DOMAIN.format(name="backing", disk=disk, network="default"))
    before = volume_keys(d)
    status, msg = error_of(d, {"source": "libvirt", "path": xml})
    assert status == 400 and "another file" in msg and secret in msg, (status, msg)
    assert volume_keys(d) == before
    assert d.request("GET", "/v1/vms/backing")[0] == 404


def test_racing_imports_of_one_name(env):
    """Two imports of one name at once: one VM, and the loser's volumes go."""
    d, tmp, _ = env
    disk = os.path.join(tmp, "race.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "8M"], check=True)
    xml = os.path.join(tmp, "race.xml")
    with open(xml, "w") as f:
        f.write("<domain><name>race</name><memory unit='MiB'>64</memory><devices>"
                f"<disk type='file' device='disk'><source file='{disk}'/></disk>"
                "</devices></domain>")
    before = volume_keys(d)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: d.request("POST", "/v1/vm-imports",
                                                    {"source": "libvirt", "path": xml}),
                                range(2)))
    tasks = [doc["task"] for status, doc in answers if status == 202]
    states = sorted(d.wait_task(t)["state"] for t in tasks)
    refused = [doc for status, doc in answers if status != 202]
    assert len(tasks) + len(refused) == 2 and states.count("succeeded") == 1, (answers, states)
    vm = d.vm("race")
    assert volume_keys(d) == before | {k["volume"] for k in vm["disks"]}
    d.wait_task(d.api("DELETE", "/v1/vms/race", expect=202)["task"])


@pytest.mark.skipif(not os.path.exists("/usr/share/OVMF/OVMF_VARS_4M.fd"),
                    reason="needs OVMF (apt-get install ovmf)")
def test_ova_efi_firmware(env):
    """An OVF stating EFI firmware (VMware's way) makes a UEFI VM with its
    own NVRAM volume; deleting the VM removes both volumes."""
    d, tmp, vmdk = env
    size = os.path.getsize(os.path.join(TEST_IMAGE, "disk.raw"))
    ovf = ovf_text("efi", [("root.vmdk", size)]).replace(
        "</VirtualHardwareSection>",
        '<vmw:Config xmlns:vmw="http://www.vmware.com/schema/ovf" ovf:required="false" '
        'vmw:key="firmware" vmw:value="efi"/></VirtualHardwareSection>')
    ova = make_ova(os.path.join(tmp, "efi.ova"), ovf, [("root.vmdk", vmdk)])
    before = volume_keys(d)
    out = d.cli("vm", "import-ova", ova, "--network", "default")
    assert "firmware uefi" in out.stderr, out
    vm = d.vm("efi")
    assert vm["firmware"] == "uefi" and vm["nvram"] == "default/efi-nvram", vm
    assert volume_keys(d) == before | {"default/efi-disk0", "default/efi-nvram"}
    d.wait_task(d.api("DELETE", "/v1/vms/efi", expect=202)["task"])
    assert volume_keys(d) == before


def test_leftover_disk_copies_go_at_start(env):
    """A disk copied out of an OVA when vireod stopped is removed at its next start."""
    d, _, _ = env
    left = os.path.join(d.state_dir, "imports", ".gone-AbC123")
    os.makedirs(left, exist_ok=True)
    with open(os.path.join(left, "root.vmdk"), "wb") as f:
        f.write(b"KDMV")
    d.stop()
    d.start()
    assert not os.path.exists(left)


@pytest.fixture(scope="module")
def crashy(tmp_path_factory):
    """A fake-driver vireod whose fault points (VIREO_TEST_MIGRATE_FAULT: a
    file per point, taken once) make it _exit at a named moment; its hold
    points (VIREO_FAKE_FAULTS) are in d.holds."""
    faults = str(tmp_path_factory.mktemp("faults"))
    holds = str(tmp_path_factory.mktemp("holds"))
    d = Daemon(driver="fake", env={"VIREO_TEST_MIGRATE_FAULT": faults,
                                   "VIREO_FAKE_FAULTS": holds})
    d.holds = holds
    try:
        yield d, faults
    finally:
        d.cleanup()


def exit_at(d, faults, point, method, path, body):
    """Sends the request with the fault point armed; vireod _exits there.
    Returns the task the request answered."""
    open(os.path.join(faults, point), "w").close()
    task = d.api(method, path, body, expect=202)["task"]
    d.proc.wait(timeout=60)
    assert not os.path.exists(os.path.join(faults, point)), d.log()
    return task


def pool_files(d, prefix):
    pool = os.path.join(d.state_dir, "pools", "default")
    return sorted(n for n in os.listdir(pool) if n.startswith(prefix))


def assert_interrupted(d, task):
    t = d.api("GET", f"/v1/tasks/{task['id']}")
    assert t["state"] == "failed" and t["error"]["code"] == "interrupted", t


def test_import_cut_short_leaves_nothing(crashy, tmp_path):
    """vireod dies after the first disk of a two-disk OVA was converted: the
    next start removes that volume (document and file) and the scratch
    directory, the task is failed/interrupted, and a VM imported whole
    before keeps its volumes."""
    d, faults = crashy
    vmdk = str(tmp_path / "small.vmdk")
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", "-o",
                    "subformat=streamOptimized", vmdk, "8M"], check=True)
    disks = [("a.vmdk", 8 << 20), ("b.vmdk", 8 << 20)]
    whole = make_ova(str(tmp_path / "whole.ova"), ovf_text("whole", disks),
                     [("a.vmdk", vmdk), ("b.vmdk", vmdk)])
    d.task_ok("POST", "/v1/vm-imports", {"source": "ova", "path": whole, "network": "user"})
    assert d.store_keys("intents/") == []
    before = volume_keys(d)
    assert {"default/whole-disk0", "default/whole-disk1"} <= before, before
    half = make_ova(str(tmp_path / "half.ova"), ovf_text("half", disks),
                    [("a.vmdk", vmdk), ("b.vmdk", vmdk)])
    task = exit_at(d, faults, "import-exit-after-disk", "POST", "/v1/vm-imports",
                   {"source": "ova", "path": half, "network": "user"})
    # what the crash left: the first volume whole, the scratch dir, the record
    assert "volumes/default/half-disk0" in d.store_keys("volumes/"), d.log()
    assert pool_files(d, "half-disk0"), os.listdir(os.path.join(d.state_dir, "pools", "default"))
    imports = os.path.join(d.state_dir, "imports")
    assert [n for n in os.listdir(imports) if n.startswith(".half-")]
    assert [k for k in d.store_keys("intents/") if k.startswith("intents/vms/")]
    d.start()
    assert volume_keys(d) == before
    assert pool_files(d, "half-") == []
    assert [n for n in os.listdir(imports) if n.startswith(".half-")] == []
    assert d.store_keys("intents/") == []
    assert d.request("GET", "/v1/vms/half")[0] == 404
    assert_interrupted(d, task)
    assert "removed volume default/half-disk0" in d.log()
    # the name is free again
    d.task_ok("POST", "/v1/vm-imports", {"source": "ova", "path": half, "network": "user"})
    assert volume_keys(d) == before | {"default/half-disk0", "default/half-disk1"}


def test_create_cut_short_leaves_nothing(crashy):
    """vireod dies after a VM create made the boot disk, before the VM's
    document was saved: the next start removes the volume, and frees the
    MAC its first write made its own (the MAC index, mac-claims.h)."""
    d, faults = crashy
    d.task_ok("POST", "/v1/vms", {"name": "kept", "memory_mib": 64})
    before = volume_keys(d)
    assert "default/kept-disk0" in before, before
    macs = d.store_keys("cluster/claims/macs/")
    task = exit_at(d, faults, "create-exit-after-disk", "POST", "/v1/vms",
                   {"name": "cut", "memory_mib": 64, "macs": ["52:54:00:0c:1c:01"]})
    assert "volumes/default/cut-disk0" in d.store_keys("volumes/"), d.log()
    assert pool_files(d, "cut-disk0")
    assert d.store_keys("cluster/claims/macs/") == sorted(macs + [
        "cluster/claims/macs/52:54:00:0c:1c:01"])
    d.start()
    assert d.store_keys("cluster/claims/macs/") == macs
    assert volume_keys(d) == before
    assert pool_files(d, "cut-") == []
    assert d.store_keys("intents/") == []
    assert d.request("GET", "/v1/vms/cut")[0] == 404
    assert_interrupted(d, task)
    d.task_ok("POST", "/v1/vms", {"name": "cut", "memory_mib": 64})
    assert volume_keys(d) == before | {"default/cut-disk0"}


def test_clone_cut_short_leaves_nothing(crashy):
    """vireod dies after a VM clone made its disk, the clone registered (its
    name, MAC and group membership taken at the request) but its document
    not saved: the next start removes the volume and frees the name, the
    MAC and the membership; the same clone then succeeds."""
    d, faults = crashy
    d.api("POST", "/v1/groups", {"name": "cg", "policy": "spread"}, expect=201)
    d.task_ok("POST", "/v1/vms", {"name": "csrc", "memory_mib": 64, "group": "cg"})
    before = volume_keys(d)
    macs = d.store_keys("cluster/claims/macs/")
    members = d.store_keys("cluster/group-members/cg/")
    task = exit_at(d, faults, "clone-exit-after-disk", "POST", "/v1/vms/csrc/clone",
                   {"name": "ccut"})
    assert d.store_keys("volumes/default/ccut"), d.log()
    assert pool_files(d, "ccut")
    assert len(d.store_keys("cluster/claims/macs/")) == len(macs) + 1
    assert len(d.store_keys("cluster/group-members/cg/")) == len(members) + 1
    assert d.store_keys("cluster/names/vms/ccut") == ["cluster/names/vms/ccut"]
    d.start()
    assert d.store_keys("cluster/names/vms/ccut") == []
    assert volume_keys(d) == before
    assert pool_files(d, "ccut") == []
    assert d.store_keys("cluster/claims/macs/") == macs
    assert d.store_keys("cluster/group-members/cg/") == members
    assert d.store_keys("intents/") == []
    assert d.request("GET", "/v1/vms/ccut")[0] == 404
    assert_interrupted(d, task)
    d.task_ok("POST", "/v1/vms/csrc/clone", {"name": "ccut"})
    assert d.vm("ccut")["group"] == "cg"


def test_lapsed_mac_claim_fails_the_write(crashy, tmp_path):
    """The claim on a MAC asked for (mac-claims.h) gone before the VM's
    document is written, as its lease's expiry takes it when the host was
    too slow to renew it for 30 s (another host may hold the MAC since):
    the write compares the claim, so an import keeping that MAC fails,
    saying so, and leaves nothing; and so does a NIC add with --mac."""
    d, _ = crashy

    def lapse_while_held(point, mac, request):
        """request() with `point` held; the claim on mac deleted there."""
        hold = os.path.join(d.holds, f"{point}.hold")
        open(hold, "w").close()
        try:
            answer = request()
            wait_until(lambda: os.path.exists(os.path.join(d.holds, f"{point}.held")), 60,
                       what=f"{point} held")
            db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"), timeout=30)
            try:
                with db:
                    gone = db.execute("DELETE FROM documents WHERE key = ?",
                                      (f"cluster/claims/macs/{mac}",)).rowcount
            finally:
                db.close()
            assert gone == 1, f"no claim on {mac} at {point}"
        finally:
            os.remove(hold)
            os.remove(os.path.join(d.holds, f"{point}.held"))
        return d.wait_task(answer["task"])

    mac = "52:54:00:0c:1a:4e"
    xml = domain_with_mac(tmp_path, "lapsed", mac)
    body = {"source": "libvirt", "path": xml, "network": "user"}
    t = lapse_while_held("import_macs_checked", mac,
                         lambda: d.api("POST", "/v1/vm-imports", body, expect=202))
    assert t["state"] == "failed" and "MAC addresses lapsed before it was saved" in \
        t["error"]["message"], t
    assert d.request("GET", "/v1/vms/lapsed")[0] == 404
    assert not any("lapsed" in k for k in volume_keys(d))

    assert d.wait_task(d.api("POST", "/v1/vm-imports", body, expect=202)["task"])[
        "state"] == "succeeded"
    added = "52:54:00:0c:1a:5e"
    t = lapse_while_held("nic_mac_claimed", added, lambda: d.api(
        "POST", "/v1/vms/lapsed/nics", {"network": "user", "mac": added}, expect=202))
    assert t["state"] == "failed" and "MAC addresses lapsed before it was saved" in \
        t["error"]["message"], t
    assert [n["mac"] for n in d.vm("lapsed")["nics"]] == [mac]


def test_failed_nic_add_frees_its_mac_at_once(crashy):
    """A NIC add with a MAC asked for that fails before it changed the VM
    (here its If-Match, right when asked, stale once an add queued before
    it changed the VM) gives its claim on the MAC back as its task ends:
    another VM gets that MAC right after. Before, the claim stayed, renewed,
    until the task's record was dropped (500 tasks later), and every add of
    the MAC was refused: "is being given to VM 'nic-a' at this moment"."""
    from test_events import etag
    d, _ = crashy
    for name in ("nic-a", "nic-b"):
        d.task_ok("POST", "/v1/vms", {"name": name, "memory_mib": 64, "networks": ["user"]})
    hold = os.path.join(d.holds, "nic_mac_claimed.hold")
    held = os.path.join(d.holds, "nic_mac_claimed.held")
    mac = "52:54:00:0c:1b:02"
    open(hold, "w").close()
    try:
        first = d.api("POST", "/v1/vms/nic-a/nics", {"network": "user",
                                                     "mac": "52:54:00:0c:1b:01"}, expect=202)
        wait_until(lambda: os.path.exists(held), 60, what="the first add held")
        status, second = d.request("POST", "/v1/vms/nic-a/nics", {"network": "user", "mac": mac},
                                   headers={"If-Match": etag(d, "/v1/vms/nic-a")})
        assert status == 202, second
    finally:
        os.remove(hold)
        if os.path.exists(held):
            os.remove(held)
    assert d.wait_task(first["task"])["state"] == "succeeded"
    failed = d.wait_task(second["task"])
    assert failed["state"] == "failed" and "If-Match" in failed["error"]["message"], failed
    status, answer = d.request("POST", "/v1/vms/nic-b/nics", {"network": "user", "mac": mac})
    assert status == 202, answer
    assert d.wait_task(answer["task"])["state"] == "succeeded"
    assert [n["mac"] for n in d.vm("nic-b")["nics"]][-1] == mac


def fake_iso(path):
    """A file vireo takes for an ISO 9660 image: "CD001" at byte 32769."""
    with open(path, "wb") as f:
        f.write(b"\0" * 32769 + b"CD001" + b"\0" * (65536 - 32774))
    return path


def test_cdrom_iso_imported(crashy, tmp_path):
    """A domain's CD-ROM with an ISO and an OVF's CD-ROM item naming a file
    of the OVA: the ISO becomes an iso volume of the pool in the VM's drive
    (the plan says so at once); a CD-ROM holding no ISO is a warning. A NIC
    add with the all-zero MAC is refused."""
    d, _ = crashy
    iso = fake_iso(str(tmp_path / "install.iso"))
    disk = str(tmp_path / "cd.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "8M"], check=True)
    xml = str(tmp_path / "cd.xml")
    with open(xml, "w") as f:
        f.write("<domain><name>cd</name><memory unit='MiB'>64</memory><devices>"
                f"<disk type='file' device='disk'><source file='{disk}'/></disk>"
                f"<disk type='file' device='cdrom'><source file='{disk}'/><target dev='sda'/>"
                f"</disk><disk type='file' device='cdrom'><source file='{iso}'/></disk>"
                "</devices></domain>")
    answer = d.api("POST", "/v1/vm-imports", {"source": "libvirt", "path": xml,
                                                "network": "user"}, expect=202)
    plan = answer["import"]
    assert plan["cdrom"] == {"source": iso, "pool": "default"}, plan
    assert f"CD-ROM '{disk}' is not imported (it is not an ISO 9660 image)" \
        in plan["warnings"], plan["warnings"]
    done = d.wait_task(answer["task"])
    assert done["state"] == "succeeded", done
    assert done["result"]["cdrom"]["volume"] == "default/cd-cdrom0", done["result"]
    vm = d.vm("cd")
    assert vm["cdrom"] == {"volume": "default/cd-cdrom0"}, vm
    assert [k["volume"] for k in vm["disks"]] == ["default/cd-disk0"], vm["disks"]
    volume = d.api("GET", "/v1/pools/default/volumes/cd-cdrom0")
    assert volume["content"] == "iso" and volume["format"] == "raw", volume

    status, doc = d.request("POST", "/v1/vms/cd/nics",
                            {"network": "user", "mac": "00:00:00:00:00:00"})
    assert status == 400 and "00:00:00:00:00:00" in doc["error"]["message"], (status, doc)

    vmdk = str(tmp_path / "d.vmdk")
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", disk,
                    vmdk], check=True)
    ovf = ovf_text("cdova", [("d.vmdk", 8 << 20)]).replace(
        '</References>', '<File ovf:id="iso" ovf:href="install.iso"/></References>').replace(
        "</VirtualHardwareSection>",
        "<Item><rasd:ElementName>cd</rasd:ElementName><rasd:InstanceID>20</rasd:InstanceID>"
        "<rasd:HostResource>ovf:/file/iso</rasd:HostResource>"
        "<rasd:ResourceType>15</rasd:ResourceType></Item></VirtualHardwareSection>")
    ova = make_ova(str(tmp_path / "cd.ova"), ovf, [("d.vmdk", vmdk), ("install.iso", iso)])
    result = d.task_ok("POST", "/v1/vm-imports", {"source": "ova", "path": ova,
                                                  "network": "user"})
    assert d.vm("cdova")["cdrom"] == {"volume": "default/cdova-cdrom0"}, result
    with open(d.api("GET", "/v1/pools/default/volumes/cdova-cdrom0")["path"], "rb") as f, \
            open(iso, "rb") as g:
        assert f.read() == g.read()

    # the ISO copied first, then a corrupt disk: the ISO's volume goes again
    cd_item = ovf[ovf.index("<Item><rasd:ElementName>cd<"):ovf.index("</VirtualHardwareSection>")]
    bad = ovf.replace("cdova", "cdbad").replace(cd_item, "").replace(
        "<Item><rasd:ElementName>disk0", cd_item + "<Item><rasd:ElementName>disk0")
    before = volume_keys(d)
    ova = make_ova(str(tmp_path / "bad.ova"), bad,
                   [("d.vmdk", b"KDMV" + b"\xff" * 4096), ("install.iso", iso)])
    answer = d.api("POST", "/v1/vm-imports", {"source": "ova", "path": ova, "network": "user"},
                   expect=202)
    assert [k["cdrom"] for k in answer["import"]["disks"]] == [True, False], answer
    failed = d.wait_task(answer["task"])
    assert failed["state"] == "failed" and "d.vmdk" in failed["error"]["message"], failed
    assert volume_keys(d) == before and d.request("GET", "/v1/vms/cdbad")[0] == 404


def test_cdrom_without_iso_is_a_warning(crashy, tmp_path):
    """A CD-ROM whose ISO cannot be had is a warning and an empty drive, not
    a refused import: an OVF CD-ROM item naming a File the OVA does not hold,
    and a domain's CD-ROM source that is a FIFO (answered at once, never
    waited on)."""
    d, _ = crashy
    disk = str(tmp_path / "w.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "1M"], check=True)
    vmdk = str(tmp_path / "w.vmdk")
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", disk,
                    vmdk], check=True)
    ovf = ovf_text("cdgone", [("w.vmdk", 1 << 20)]).replace(
        '</References>', '<File ovf:id="iso" ovf:href="gone.iso"/></References>').replace(
        "</VirtualHardwareSection>",
        "<Item><rasd:ElementName>cd</rasd:ElementName><rasd:InstanceID>20</rasd:InstanceID>"
        "<rasd:HostResource>ovf:/file/iso</rasd:HostResource>"
        "<rasd:ResourceType>15</rasd:ResourceType></Item></VirtualHardwareSection>")
    ova = make_ova(str(tmp_path / "gone.ova"), ovf, [("w.vmdk", vmdk)], manifest=False)
    status, answer = d.request("POST", "/v1/vm-imports", {"source": "ova", "path": ova,
                                                          "network": "user"})
    assert status == 202, answer
    assert answer["import"]["cdrom"] == {}, answer
    assert "CD-ROM 'gone.iso' is not imported (the OVA does not hold it): the VM gets an empty " \
        "drive" in answer["import"]["warnings"], answer
    assert d.wait_task(answer["task"])["state"] == "succeeded"
    assert d.vm("cdgone")["cdrom"] == {}

    fifo = str(tmp_path / "cd.fifo")
    os.mkfifo(fifo)
    xml = str(tmp_path / "fifo.xml")
    with open(xml, "w") as f:
        f.write("<domain><name>cdfifo</name><memory unit='MiB'>64</memory><devices>"
                f"<disk type='file' device='disk'><source file='{disk}'/></disk>"
                f"<disk type='file' device='cdrom'><source file='{fifo}'/></disk>"
                "</devices></domain>")
    answer = d.api("POST", "/v1/vm-imports", {"source": "libvirt", "path": xml,
                                                "network": "user"}, expect=202)
    assert f"CD-ROM '{fifo}' is not imported (it is not an ISO 9660 image): the VM gets an " \
        "empty drive" in answer["import"]["warnings"], answer
    assert d.wait_task(answer["task"])["state"] == "succeeded"
    assert d.vm("cdfifo")["cdrom"] == {}


def two_hosts_with_faults(cluster, monkeypatch, faults):
    """A formed cluster of two fake-driver hosts, the fault (and hold)
    directory of each (VIREO_FAKE_FAULTS) in faults: (h1, h2)."""
    from test_cluster_placement import form
    monkeypatch.setenv("VIREO_FAKE_FAULTS", faults[0])
    c = cluster(1, driver="fake", listen=False)
    monkeypatch.setenv("VIREO_FAKE_FAULTS", faults[1])
    c.add_host()
    form(c)
    return c.hosts


def test_racing_imports_on_two_hosts_keep_one_mac(cluster, tmp_path, monkeypatch):
    """One domain imported on two hosts of a cluster at once (vireo vm
    import-libvirt), each import held after it checked its MAC and before
    its VM is written (fake driver): exactly one VM keeps the source's MAC
    (the imports claim it first: mac-claims.h); the other's NIC gets a new
    one, and its CLI prints why once its task ended. The claims go with the
    imports: a third import of the domain finds the MAC in use, not claimed.
    NIC adds with a MAC asked for claim it too: of two adds of one MAC on
    two hosts at once, and of an add racing an import keeping that MAC, one
    wins and the other is refused (409) naming the MAC and the VM that
    gets it; once written, the VM's document refuses it."""
    faults = [str(tmp_path / f"faults{i}") for i in (1, 2)]

    def hold(point, dirs=faults):
        for f in dirs:
            open(os.path.join(f, f"{point}.hold"), "w").close()

    def wait_held(point, dirs=faults):
        for f in dirs:
            wait_until(lambda: os.path.exists(os.path.join(f, f"{point}.held")), 60,
                       what=f"{point} held")

    def release(point, dirs=faults):
        for f in dirs:
            for end in ("hold", "held"):
                if os.path.exists(os.path.join(f, f"{point}.{end}")):
                    os.remove(os.path.join(f, f"{point}.{end}"))

    def domain(name, mac):
        return domain_with_mac(tmp_path, name, mac, disk)

    for f in faults:
        os.makedirs(f)
    hold("import_macs_checked")
    h1, h2 = two_hosts_with_faults(cluster, monkeypatch, faults)
    disk = str(tmp_path / "r.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "8M"], check=True)
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(h.cli, "vm", "import-libvirt",
                            domain(f"mac-{h.name}", "52:54:00:0c:1a:1e"), "--network", "user")
                for h in (h1, h2)]
        wait_held("import_macs_checked")  # both checked, neither written
        release("import_macs_checked")
        outs = [r.result() for r in runs]
    macs = [h.vm(f"mac-{h.name}")["nics"][0]["mac"] for h in (h1, h2)]
    assert sorted(m == "52:54:00:0c:1a:1e" for m in macs) == [False, True], macs
    loser = outs[macs.index(next(m for m in macs if m != "52:54:00:0c:1a:1e"))]
    assert "warning: NIC 1 gets a new MAC address (52:54:00:0c:1a:1e is being given to " \
        "another VM at this moment)" in loser.stderr, (loser.stdout, loser.stderr)
    status, answer = h1.request("POST", "/v1/vm-imports", {
        "source": "libvirt", "path": str(tmp_path / "mac-h1.xml"), "name": "mac-third",
        "network": "user"})
    assert status == 202, answer
    third = h1.wait_task(answer["task"])
    notes = [w for w in third["result"]["warnings"] if "NIC 1 gets a new MAC" in w]
    assert len(notes) == 1 and "is in use" in notes[0], third

    # Two NIC adds of one MAC: h1's holds its claim (held before its save).
    mac = "52:54:00:0c:1a:2e"
    hold("nic_mac_claimed")
    first = h1.api("POST", "/v1/vms/mac-h1/nics", {"network": "user", "mac": mac}, expect=202)
    wait_held("nic_mac_claimed", faults[:1])
    status, answer = h2.request("POST", "/v1/vms/mac-h2/nics", {"network": "user", "mac": mac})
    release("nic_mac_claimed")
    assert status == 409, answer
    assert f"mac: {mac} is being given to VM 'mac-h1' on host 'h1'" in \
        answer["error"]["message"], answer
    assert h1.wait_task(first["task"])["state"] == "succeeded"
    status, answer = h2.request("POST", "/v1/vms/mac-h2/nics", {"network": "user", "mac": mac})
    assert status == 409 and f"mac: {mac} is already used by VM 'mac-h1' on host 'h1'" in \
        answer["error"]["message"], answer

    # An add racing an import that keeps the MAC: the import (held) holds it.
    mac = "52:54:00:0c:1a:3e"
    hold("import_macs_checked", faults[:1])
    status, answer = h1.request("POST", "/v1/vm-imports", {
        "source": "libvirt", "path": domain("mac-fourth", mac), "network": "user"})
    assert status == 202, answer
    wait_held("import_macs_checked", faults[:1])
    status, refused = h2.request("POST", "/v1/vms/mac-h2/nics", {"network": "user", "mac": mac})
    release("import_macs_checked")
    assert status == 409 and "being given to VM 'mac-fourth' on host 'h1'" in \
        refused["error"]["message"], refused
    fourth = h1.wait_task(answer["task"])
    assert fourth["state"] == "succeeded" and h1.vm("mac-fourth")["nics"][0]["mac"] == mac, fourth
    assert [n["mac"] for n in h2.vm("mac-h2")["nics"]] == [macs[1]]