"""Placement in a cluster of three hosts formed with vireo cluster
init/join (the multi-host harness): VMs created without a host go through
the manager and spread 2/2/2 (one of them boots a real TCG guest where it
landed), a spread group of 3 lands on 3 hosts, a VM too big for any host is
a 409 naming each host's reason, --host pins (and says why a host cannot
take it), a VM on a volume or in a pool of one host's own goes to that host
(a pool no host has: 409; a pool made a moment ago is found), a VM on a
volume of a pool two hosts have goes to the one holding it, the placement policy, and the manager's host killed: another
host takes the role within the lease's TTL and creates still work, also
one sent while the dead manager still held the role."""

import collections
import json
import subprocess

from vireo_harness import BOOT_MARKER, UnixHTTPConnection, wait_until

LEASE_TTL_S = 6  # VO_HOST_LEASE_TTL_MS
MARGIN_S = 10    # a loaded test machine


def form(c):
    h1, *rest = c.hosts
    h1.cli_json("cluster", "init", "--address", h1.address)
    h1.use_cluster_certs()
    for h in rest:
        tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
        h.cli_json("cluster", "join", f"{h1.address}:{h1.port}", "--token", tok["token"],
                   "--address", h.address)
        h.use_cluster_certs()
    names = sorted(h.name for h in c.hosts)
    for h in c.hosts:
        wait_until(lambda: sorted(x["name"] for x in hosts(h) if x["state"] == "online")
                   == names, 30, what=f"{len(names)} hosts online seen from {h.name}")
    wait_until(lambda: manager(h1), 20, what="a manager")


def hosts(h):
    return h.api("GET", "/v1/hosts")["hosts"]


def manager(h):
    """The manager's name as h sees it, or None."""
    return next((x["name"] for x in hosts(h) if x.get("manager")), None)


def by_name(c, name):
    return next(h for h in c.hosts if h.name == name)


def create(via, body, expect=202):
    """POST /v1/vms on via's socket; the answer."""
    return via.api("POST", "/v1/vms", body, expect=expect)


def wait_created(c, doc):
    """Waits for the create task on the host that runs it."""
    h = by_name(c, doc["host"]["name"])
    task = h.wait_task(doc["task"])
    assert task["state"] == "succeeded", task
    return h


def test_placement_spread_groups_pins_and_refusals(cluster):
    c = cluster(3, driver="qemu", listen=False)
    form(c)
    h1, h2, h3 = c.hosts
    m = manager(h1)
    # Asked of a host that is not the manager: it goes through the manager.
    via = next(h for h in c.hosts if h.name != m)

    # Six small VMs without --host, one right after the other: 2/2/2 (the
    # manager's reservations count those the records do not show yet).
    placed = collections.Counter()
    docs = []
    for i in range(6):
        doc = create(via, {"name": f"s{i}", "memory_mib": 128})
        placed[doc["host"]["name"]] += 1
        docs.append(doc)
    assert sorted(placed.values()) == [2, 2, 2], placed
    for doc in docs:
        h = wait_created(c, doc)
        assert h.vm(doc["vm"]["name"])["name"] == doc["vm"]["name"]  # made there
    for h in c.hosts:
        # Its own (GET /v1/vms lists every host's VMs).
        local = [v["name"] for v in h.api("GET", f"/v1/vms?host={h.name}")["vms"]]
        assert len(local) == 2, (h.name, local)

    # One of them boots, a real TCG guest, on the host it was placed on.
    first = by_name(c, docs[0]["host"]["name"])
    first.cli("vm", "start", "s0")
    first.wait_console("s0", BOOT_MARKER, timeout=240)
    first.remember_qemu_pids()

    # A spread group of 3 lands on 3 hosts; the group is the cluster's.
    h3.cli("group", "create", "web", "--policy", "spread")
    assert "web" in h1.cli("group", "list").stdout
    on = set()
    for i in range(3):
        doc = create(h2, {"name": f"web{i}", "memory_mib": 64, "group": "web"})
        on.add(doc["host"]["name"])
        wait_created(c, doc)
    assert on == {"h1", "h2", "h3"}
    g = h1.api("GET", "/v1/groups/web")
    assert sorted(x["name"] for x in g["members"]) == ["web0", "web1", "web2"]
    assert len({x["host"] for x in g["members"]}) == 3
    err = h2.api("DELETE", "/v1/groups/web", expect=409)["error"]["message"]
    assert "web0" in err and "delete them first" in err
    err = create(h2, {"name": "x", "group": "nope"}, expect=400)["error"]["message"]
    assert "group 'nope' does not exist" in err

    # Too big for any host: 409 with each host's reason.
    biggest = max(x["memory_mib"] for x in hosts(h1))
    err = create(h1, {"name": "huge", "memory_mib": biggest * 4}, expect=409)["error"]
    for name in ("h1", "h2", "h3"):
        assert f"{name}: needs {biggest * 4} MiB" in err["message"], err
    assert err["message"].startswith("no host fits")

    # --host pins, through the manager from any host (and with the CLI).
    doc = create(h1, {"name": "pinned", "memory_mib": 64, "host": "h3"})
    assert doc["host"]["name"] == "h3"
    wait_created(c, doc)
    h2.cli("vm", "create", "pinned2", "--memory", "64M", "--host", "h2")
    assert h2.vm("pinned2")["name"] == "pinned2"
    # A pinned host that cannot take it says why; an unknown one is named.
    err = create(h1, {"name": "big", "memory_mib": biggest * 4, "host": "h2"},
                 expect=409)["error"]["message"]
    assert err.startswith("host h2 does not fit: needs") and "h1" not in err
    err = create(h3, {"name": "nowhere", "host": "h9"}, expect=400)["error"]["message"]
    assert "host: 'h9' is not a host of this cluster" in err

    # Pack: two more VMs go to one host (the most loaded that fits).
    h2.cli("placement", "set", "pack")
    assert h1.api("GET", "/v1/placement") == {"policy": "pack"}
    a = create(h3, {"name": "p1", "memory_mib": 64})
    wait_created(c, a)
    b = create(h3, {"name": "p2", "memory_mib": 64})
    wait_created(c, b)
    assert a["host"]["name"] == b["host"]["name"]
    h1.cli("placement", "set", "spread")


def test_manager_failover(cluster):
    c = cluster(3, driver="fake", listen=False)
    form(c)
    dead = by_name(c, manager(c.hosts[0]))
    alive = [h for h in c.hosts if h is not dead]
    # A host asked to place that is not the manager does nothing and says
    # so (503): the asker reads the manager again.
    status, body = alive[0].request("POST", "/v1/vms", {"name": "astray", "memory_mib": 64},
                                    headers={"X-Vireo-Place": "1"})
    assert status == 503 and "is not the cluster's manager" in body["error"]["message"], body
    assert alive[0].request("GET", "/v1/vms/astray")[0] == 404
    c.kill_host(dead)
    # Right away, while the dead host still holds the role (its lease has
    # not expired): the create waits for the role to move and asks again.
    doc = create(alive[0], {"name": "during", "memory_mib": 64})
    assert doc["host"]["name"] != dead.name
    wait_created(c, doc)
    assert "did not take the request" in alive[0].log() and \
        "asking again once the role moved" in alive[0].log()
    # Another host is the manager within the lease's TTL (and a margin).
    new = wait_until(lambda: manager(alive[1]) not in (None, dead.name),
                     LEASE_TTL_S + MARGIN_S, what="a new manager")
    assert new
    # Placement works: a VM without --host, asked of either live host.
    for i, h in enumerate(alive):
        doc = create(h, {"name": f"after{i}", "memory_mib": 64})
        assert doc["host"]["name"] in {x.name for x in alive}
        wait_created(c, doc)
    err = create(alive[0], {"name": "dead", "host": dead.name}, expect=409)["error"]["message"]
    assert err == f"host {dead.name} does not fit: offline"


def create_with_headers(via, body):
    """POST /v1/vms on via's socket: (status, answer, headers)."""
    conn = UnixHTTPConnection(via.socket, timeout=60)
    try:
        conn.request("POST", "/v1/vms", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read()), dict(resp.getheaders())
    finally:
        conn.close()


def test_a_create_goes_where_the_pools_it_names_are(cluster, tmp_path):
    """Created without a host, a VM on a volume of h1's own pool, or with
    its new disk in that pool, lands on h1 every time, asked of either host
    (before: spread over both, and h2 answered "volume 'fast/v1' does not
    exist"). A pool no host has is a 409 naming it, and nothing is made."""
    c = cluster(2, driver="fake", listen=False)
    h1, h2 = c.hosts
    (tmp_path / "fast").mkdir()
    h1.api("POST", "/v1/pools", {"name": "fast", "path": str(tmp_path / "fast")}, expect=201)
    form(c)
    for i in range(4):
        h1.task_ok("POST", "/v1/pools/fast/volumes", {"name": f"v{i}", "size_bytes": 1 << 20})
    placed = []
    for i in range(4):
        doc = create(c.hosts[i % 2], {"name": f"on{i}", "memory_mib": 32,
                                      "disk_volume": f"fast/v{i}"})
        placed.append(doc["host"]["name"])
        wait_created(c, doc)
    for i in range(2):
        doc = create(c.hosts[i % 2], {"name": f"in{i}", "memory_mib": 32, "pool": "fast"})
        placed.append(doc["host"]["name"])
        wait_created(c, doc)
    assert placed == ["h1"] * 6, placed
    for name in ("on0", "on3", "in1"):
        assert h1.vm(name)["name"] == name  # made there
    err = create(h2, {"name": "lost", "memory_mib": 32, "pool": "nowhere"},
                 expect=409)["error"]["message"]
    assert "cannot reach pool nowhere" in err, err
    assert "lost" not in [v["name"] for v in h1.api("GET", "/v1/vms")["vms"]]
    # A volume named without its pool is the request's fault (400), not a
    # pool 'v0' no host reaches (409).
    err = create(h2, {"name": "typo", "memory_mib": 32, "disk_volume": "v0"},
                 expect=400)["error"]["message"]
    assert "POOL/NAME" in err, err
    # A pool made after the cluster formed is in its host's record when
    # its create answers: a VM in it at once after is placed there.
    (tmp_path / "late").mkdir()
    h1.api("POST", "/v1/pools", {"name": "late", "path": str(tmp_path / "late")}, expect=201)
    doc = create(h2, {"name": "late0", "memory_mib": 32, "pool": "late"})
    assert doc["host"]["name"] == "h1", doc
    wait_created(c, doc)


def test_a_create_on_a_volume_of_a_pool_two_hosts_have_goes_to_its_host(cluster, tmp_path):
    """Both hosts have their own pool 'lp', the volumes are h2's: a VM on
    one of them lands on h2 (its volume document says where it is), asked
    of either host (before: either host, and h1 answered "volume 'lp/x0'
    does not exist")."""
    c = cluster(2, driver="fake", listen=False)
    h1, h2 = c.hosts
    for h in c.hosts:
        (tmp_path / h.name).mkdir()
        h.api("POST", "/v1/pools", {"name": "lp", "path": str(tmp_path / h.name)}, expect=201)
    form(c)
    for i in range(4):
        h2.task_ok("POST", "/v1/pools/lp/volumes", {"name": f"x{i}", "size_bytes": 1 << 20})
    placed = []
    for i in range(4):
        doc = create(c.hosts[i % 2], {"name": f"on{i}", "memory_mib": 32,
                                      "disk_volume": f"lp/x{i}"})
        placed.append(doc["host"]["name"])
        wait_created(c, doc)
    assert placed == ["h2"] * 4, placed


def test_placed_create_answers_its_record(cluster, tmp_path):
    """The chosen host rewrites its record before it answers a placed
    create, from the create's own thread, and answers the record's
    revision (Vireo-Record-Revision) so the manager keeps the room reserved
    until its snapshot holds that revision without reading the record: the
    header comes back through every hop, the record already shows the VM
    when the 202 arrives, and creates one right after the other still
    spread (the reservations settled on that revision)."""
    c = cluster(3, driver="fake", listen=False)
    form(c)
    m = by_name(c, manager(c.hosts[0]))
    other = next(h for h in c.hosts if h is not m)
    revs = []
    for i, target in enumerate(c.hosts):
        for via in (m, other):  # the manager itself, and one hop more
            name = f"r{i}{via.name}"
            before = next(x for x in hosts(m) if x["name"] == target.name)
            status, doc, hdrs = create_with_headers(
                via, {"name": name, "memory_mib": 32, "host": target.name})
            assert status == 202, doc
            assert doc["host"]["name"] == target.name
            rev = hdrs.get("Vireo-Record-Revision")
            assert rev and rev.isdigit() and int(rev) > 0, hdrs
            revs.append(int(rev))
            # Written before the answer: the record shows the VM now.
            after = next(x for x in hosts(m) if x["name"] == target.name)
            assert after["committed_memory_mib"] == before["committed_memory_mib"] + 32, \
                (before, after)
            wait_created(c, doc)
    assert revs == sorted(revs) and len(set(revs)) == len(revs), revs
    # Back to back without a host: 3/3/3 (each create's room held until the
    # manager's snapshot has the record at the answered revision).
    placed = collections.Counter()
    for i in range(9):
        status, doc, hdrs = create_with_headers(other if i % 2 else m,
                                                {"name": f"b{i}", "memory_mib": 32})
        assert status == 202, doc
        assert "Vireo-Record-Revision" in hdrs, hdrs
        placed[doc["host"]["name"]] += 1
    assert sorted(placed.values()) == [3, 3, 3], placed
    imported_mac_is_unique_in_the_cluster(c, tmp_path)


DOMAIN = """<domain type='kvm'><name>{name}</name><memory unit='KiB'>32768</memory>
<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices>
<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>
<target dev='vda' bus='virtio'/></disk>
<interface type='network'><mac address='52:54:00:12:34:56'/><source network='x'/></interface>
</devices></domain>"""


def imported_mac_is_unique_in_the_cluster(c, tmp_path):
    """The same libvirt domain imported on two hosts: the first keeps its
    NIC's MAC, the second gets a new one (the cluster's networks span its
    hosts: one MAC on two hosts' VMs breaks both), and says why."""
    disk = str(tmp_path / "mac.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "1M"], check=True)
    macs = []
    for i, host in enumerate(c.hosts[:2]):
        xml = tmp_path / f"mac{i}.xml"
        xml.write_text(DOMAIN.format(name=f"mac{i}", disk=disk))
        out = host.cli("vm", "import-libvirt", str(xml), "--network", "default")
        macs.append((host.vm(f"mac{i}")["nics"][0]["mac"], out.stderr))
    assert macs[0][0] == "52:54:00:12:34:56", macs
    assert macs[1][0] != "52:54:00:12:34:56", macs
    assert "NIC 1 gets a new MAC address (52:54:00:12:34:56 is in use on another host of " \
        "the cluster)" in macs[1][1], macs
    # All zeros (some exports say so for "none"): QEMU would give the NIC a
    # default MAC of its own, the same on every VM, not the spec's.
    xml = tmp_path / "mac2.xml"
    xml.write_text(DOMAIN.format(name="mac2", disk=disk).replace("52:54:00:12:34:56",
                                                                 "00:00:00:00:00:00"))
    out = c.hosts[2].cli("vm", "import-libvirt", str(xml), "--network", "default")
    assert "NIC 1 gets a new MAC address (00:00:00:00:00:00 is no address (all zeros))" \
        in out.stderr, out.stderr
    assert c.hosts[2].vm("mac2")["nics"][0]["mac"] not in ("00:00:00:00:00:00", macs[1][0])
