"""Live migration of a UEFI VM (OVMF, a per-VM NVRAM volume) between two
hosts: with the NVRAM in a shared pool it migrates (guest memory verified
by the product's digest on both sides), runs on the destination, and boots
again there from the same NVRAM after a stop; with the NVRAM in a local
pool the migration is refused naming the volume; nothing moved."""

import os

import pytest

from vireo_harness import wait_until

from test_migrate import create_on, form, hosts_of, shared_pool

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
# OVMF's boot manager, on the serial console (no bootable disk: it says so).
OVMF_SAYS = "BdsDxe"

pytestmark = pytest.mark.skipif(not os.path.exists(OVMF_CODE),
                                reason="needs OVMF (apt-get install ovmf)")


def create_uefi(h, name, pool):
    create_on(h, name, pool=pool, memory=128, full_clone=False, blank=True,
              disk_size_bytes=16 << 20, firmware="uefi")


def test_uefi_vm_migrates_with_its_nvram_on_a_shared_pool(cluster):
    c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    create_uefi(h1, "u1", "nfs")
    create_uefi(h1, "u2", "default")
    assert h1.vm("u1")["nvram"] == "nfs/u1-nvram", h1.vm("u1")
    assert h1.vm("u2")["nvram"] == "default/u2-nvram", h1.vm("u2")

    # NVRAM on a local pool: refused, naming it; nothing moved.
    h1.cli("vm", "start", "u2")
    status, doc = h1.request("POST", "/v1/vms/u2/migrate", {"to": "h2"})
    assert status == 409, doc
    msg = doc["error"]["message"]
    assert "default/u2-nvram" in msg and "shared pool" in msg, msg
    h1.cli("vm", "stop", "u2", "--force")
    assert hosts_of(h2, "u2") == ["h1"]

    # On the shared pool: it goes, with its memory verified, and runs there.
    h1.cli("vm", "start", "u1")
    wait_until(lambda: OVMF_SAYS in h1.console_log("u1"), 180, what="OVMF's boot manager")
    out = h2.cli("vm", "migrate", "u1", "--to", "h2", "--verify-memory", timeout=600).stdout
    assert "u1: migrated to h2" in out and "memory verified" in out, out
    for h in (h1, h2):
        wait_until(lambda: hosts_of(h, "u1") == ["h2"], 30, what=f"u1 on h2 seen from {h.name}")
    assert h2.vm("u1")["state"] == "running"
    assert h2.vm("u1")["nvram"] == "nfs/u1-nvram"

    # Stopped and started on h2: OVMF boots again from the same NVRAM.
    h2.cli("vm", "stop", "u1", "--force")
    seen = h2.console_log("u1").count(OVMF_SAYS)
    h2.cli("vm", "start", "u1")
    wait_until(lambda: h2.console_log("u1").count(OVMF_SAYS) > seen, 180,
               what="OVMF's boot manager again on h2")
    assert hosts_of(h1, "u1") == ["h2"]
    h2.cli("vm", "stop", "u1", "--force")
