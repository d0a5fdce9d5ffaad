"""Relations in the store: the documents under uses/ that say which VM uses
which volume, network and image follow the VM's definition (written in the
transaction that writes the VM document, deleted in the one that deletes
it), the volume and network services answer "in use" from them, and a state
dir from before them (none recorded) gets them when vireod starts."""

import json
import os
import sqlite3

MiB = 1 << 20


def uses(d):
    """{key: document} of every relation document in d's store."""
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    try:
        rows = db.execute("SELECT key, value FROM documents WHERE key LIKE 'uses/%'").fetchall()
    finally:
        db.close()
    return {k: json.loads(v) for k, v in rows}


def mine(d, vm_id):
    return {k: v for k, v in uses(d).items() if k.endswith("/" + vm_id)}


def make_vm(d):
    """VM web on network rel (with image default's boot disk) plus volume
    default/data attached; returns (id, boot volume key, mac)."""
    d.api("POST", "/v1/networks", {"name": "rel", "type": "isolated"}, expect=201)
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "data", "size_bytes": 8 * MiB})
    d.task_ok("POST", "/v1/vms", {"name": "web", "memory_mib": 64, "networks": ["rel"]})
    d.task_ok("POST", "/v1/vms/web/disks", {"volume": "default/data"})
    vm = d.vm("web")
    boot = d.api("GET", "/v1/vms/web/disks")["disks"][0]["volume"]
    mac = d.api("GET", "/v1/vms/web/nics")["nics"][0]["mac"]
    return vm["id"], boot, mac


def test_relations_follow_the_vm(fake_daemon):
    d = fake_daemon
    vm_id, boot, mac = make_vm(d)
    rel = mine(d, vm_id)
    assert set(rel) == {f"uses/volumes/{boot}/{vm_id}", f"uses/volumes/default/data/{vm_id}",
                        f"uses/networks/rel/{vm_id}", f"uses/images/default/{vm_id}"}, rel
    assert rel[f"uses/volumes/default/data/{vm_id}"] == {"vm": vm_id, "name": "web",
                                                        "active": False}
    assert rel[f"uses/networks/rel/{vm_id}"]["macs"] == [mac]
    assert d.api("GET", "/v1/pools/default/volumes/data")["attached_to"] == "web"

    # Started: "active" follows the state; a running VM's volume cannot be
    # the source of a full clone.
    d.task_ok("POST", "/v1/vms/web/start")
    assert mine(d, vm_id)[f"uses/volumes/default/data/{vm_id}"]["active"] is True
    status, body = d.request("POST", "/v1/pools/default/volumes/data/clone",
                             {"target": "default/copy", "linked": False})
    assert status == 409 and "running VM 'web'" in body["error"]["message"], body
    d.task_ok("POST", "/v1/vms/web/stop", {"force": True})
    assert mine(d, vm_id)[f"uses/volumes/default/data/{vm_id}"]["active"] is False

    # The volume and network services refuse from the relations.
    status, body = d.request("DELETE", "/v1/pools/default/volumes/data")
    assert status == 409 and "attached to VM 'web'" in body["error"]["message"], body
    status, body = d.request("DELETE", "/v1/networks/rel")
    assert status == 409 and "used by VM 'web'" in body["error"]["message"], body

    # A rename rewrites the name in every relation document.
    d.api("PATCH", "/v1/vms/web", {"name": "www"})
    assert {v["name"] for v in mine(d, vm_id).values()} == {"www"}

    # Detach the data disk, remove the NIC: their relations go, and so do
    # the refusals.
    d.task_ok("DELETE", "/v1/vms/www/disks/1")
    d.task_ok("DELETE", "/v1/vms/www/nics/0")
    assert set(mine(d, vm_id)) == {f"uses/volumes/{boot}/{vm_id}",
                                   f"uses/images/default/{vm_id}"}
    assert d.api("GET", "/v1/pools/default/volumes/data")["attached_to"] is None
    d.task_ok("DELETE", "/v1/pools/default/volumes/data")
    d.api("DELETE", "/v1/networks/rel")

    # The delete takes the rest with the VM document.
    d.task_ok("DELETE", "/v1/vms/www")
    assert mine(d, vm_id) == {}
    assert uses(d) == {}


def test_state_dir_without_relations_gets_them_at_start(fake_daemon):
    d = fake_daemon
    vm_id, boot, mac = make_vm(d)
    want = mine(d, vm_id)
    d.stop()
    # As vireo before relations left it, plus one left by a VM that is gone.
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    db.execute("DELETE FROM documents WHERE key LIKE 'uses/%'")
    db.execute("INSERT INTO documents (key, mod_rev, create_rev, lease, value) VALUES "
               "('uses/volumes/default/data/00000000-0000-0000-0000-00000000dead', "
               "1, 1, 0, '{\"vm\":\"00000000-0000-0000-0000-00000000dead\",\"name\":\"gone\","
               "\"active\":false}')")
    db.commit()
    db.close()
    d.start()
    assert uses(d) == want
    # dnsmasq's host entries come from them.
    with open(os.path.join(d.run_dir, "networks", "rel", "hosts")) as f:
        assert f.read() == f"{mac},web\n"
    status, body = d.request("DELETE", "/v1/pools/default/volumes/data")
    assert status == 409 and "attached to VM 'web'" in body["error"]["message"], body
    status, _ = d.request("DELETE", "/v1/networks/rel")
    assert status == 409
