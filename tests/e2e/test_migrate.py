"""Live migration between two hosts of a real cluster (cluster_harness:
each host a network namespace with its own vireod and etcd member; a
shared pool is a directory every host sees). The VMs are real TCG guests
whose disk is on the shared pool (vm create --pool). Every migration is
made with verify_memory: both sides paused, guest RAM hashed on each and
compared before the ownership switch (the task's result says
memory_verified). Checked: the VM runs on the destination afterwards (vm
list from both hosts), a counter the guest prints on its console keeps
counting across the move and the console log continues, a file written
before is read back after; a busy guest (a loop dirtying memory) migrates
the same (its RAM also compared byte for byte by the test, as the idle
one's, its file read back and its counter going on); a cancel midway
(bandwidth limited so it is slow) leaves the VM running on the source and
nothing on the destination; a destination killed midway fails the task
and the VM runs on at the source. VMs migrated at once after their start
(in OVMF, or booting) and one whose guest cleared a root port's bus number
migrate (the hardware layout is read from QOM, not from what the guest
numbered); a destination has the
seed drive its source has after cloud-init settings dropped or given while
it ran (an empty drive; none). Refusals
(unknown host, to itself, a stopped VM, bad fields, a local disk's target
pool missing or shared there, a name clash in it) and a local-disk
migration into another pool on a fake-driver cluster. Local disks with
real guests: test_migrate_local.py."""

import contextlib
import os
import re
import shutil
import time

from cluster_harness import Pki

from vireo_harness import BOOT_MARKER, wait_until

MiB = 1 << 20


def form(c):
    first = c.hosts[0]
    first.cli("cluster", "init", "--address", first.address, "--output", "json")
    first.use_cluster_certs()
    for h in c.hosts[1:]:
        tok = first.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
        h.cli("cluster", "join", f"{first.address}:{first.port}", "--token", tok["token"],
              "--address", h.address, "--output", "json")
        h.use_cluster_certs()
    names = sorted(h.name for h in c.hosts)
    for h in c.hosts:
        wait_until(lambda: sorted(x["name"] for x in h.api("GET", "/v1/hosts")["hosts"]
                                  if x["state"] == "online") == names, 30,
                   what=f"every host online seen from {h.name}")
    # Creates answer 503 until a manager confirms its lease.
    wait_until(lambda: first.api("GET", "/v1/cluster").get("manager"), 30, what="a manager")


def shared_pool(c, name="nfs"):
    path = os.path.join(c.shared_dir, name)
    os.makedirs(path)
    c.hosts[0].api("POST", "/v1/pools", {"name": name, "path": path, "shared": True},
                   expect=201)
    for h in c.hosts:
        wait_until(lambda: (h.request("GET", f"/v1/pools/{name}")[1] or {}).get("reachable"),
                   30, what=f"{name} reachable on {h.name}")
    return path


def create_on(h, name, pool="nfs", memory=256, **fields):
    """Creates VM name pinned to host h (waiting out the 503 of a cluster
    without a confirmed manager yet); fields: more of the create body."""
    body = {"name": name, "memory_mib": memory, "host": h.name, "full_clone": True,
            "networks": ["user"], **fields}
    if pool:
        body["pool"] = pool
    status, doc = h.request("POST", "/v1/vms", body)
    deadline = time.monotonic() + 30
    while status == 503 and time.monotonic() < deadline:  # no confirmed manager yet
        time.sleep(0.5)
        status, doc = h.request("POST", "/v1/vms", body)
    assert status == 202, doc
    task = h.wait_task(doc["task"], timeout=180)
    assert task["state"] == "succeeded", task
    return doc


def hosts_of(h, name):
    return [v["host"] for v in h.api("GET", "/v1/vms?view=summary")["vms"] if v["name"] == name]


def migrate(h, name, body, expect_state="succeeded", timeout=600):
    doc = h.api("POST", f"/v1/vms/{name}/migrate", body, expect=202)
    task = h.wait_task(doc["task"], timeout=timeout)
    assert task["state"] == expect_state, (task.get("error"), task)
    return task


def ticks(text):
    return [int(x) for x in re.findall(r"tick-(\d+)", text)]


def start_counter(h, name, wait=True):
    """A counter the guest prints on its console every second (its pid in
    /tmp/counter.pid, for stop_counter); wait: until it printed tick-3."""
    h.guest(name, "(i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done) "
                  "</dev/null >/dev/ttyS0 2>&1 & echo $! >/tmp/counter.pid")
    if wait:
        h.wait_console(name, "tick-3", timeout=60)


def counter_goes_on(h, name, before):
    """The guest's counter goes on past before, on h's console log, and
    past what that log holds now: a migration brings the source's log
    along, with the ticks counted there while the move ran, so only ticks
    after those show the guest counting on h."""
    now = max(ticks(h.console_log(name)) or [0])
    wait_until(lambda: max(ticks(h.console_log(name)) or [0]) >= max(before, now) + 2, 60,
               what=f"{name}'s counter to go on on {h.name}")


def stop_counter(h, name):
    """Ends start_counter's loop: its lines would come between the output of
    later guest commands."""
    out = h.guest(name, "kill $(cat /tmp/counter.pid) && echo counter-ended-$((40+2))")
    assert "counter-ended-42" in out, out


def start_dirtying(h, name, loop, setup=":"):
    """Starts `while LOOP; do (count the round); done` in the guest's
    background (its pid in /tmp/dirty.pid, its rounds in /tmp/dirty.rounds)
    once setup succeeded, and checks it runs: LOOP succeeded once (a round
    can take seconds under a loaded TCG, so the guest waits for it,
    bounded) and the loop is still alive. A loop whose command fails (no
    /dev/shm, a full tmpfs) ends, and this fails the test instead of a
    migration that quietly copies an idle guest. The check is asked again
    (bounded): on a loaded machine a console line can come through cut."""
    h.guest(name, f"{setup} && {{ rm -f /tmp/dirty.rounds; (n=0; while {loop}; do "
                  "n=$((n+1)); echo $n >/tmp/dirty.rounds; done) </dev/null >/dev/null 2>&1 & "
                  "echo $! >/tmp/dirty.pid; }", timeout=120)
    rounds = "$(cat /tmp/dirty.rounds 2>/dev/null)"
    alive = "kill -0 $(cat /tmp/dirty.pid) 2>/dev/null"
    seen = []
    for _ in range(5):
        out = h.guest(name, f"i=0; while {alive} && [ -z \"{rounds}\" ] && [ $i -lt 60 ]; do "
                            f"sleep 1; i=$((i+1)); done; [ -n \"{rounds}\" ] && {alive} "
                            "&& echo dirtying-$((40+2)); df -k /dev/shm", timeout=120)
        if "dirtying-42" in out:
            return
        seen.append(out)
    raise AssertionError(f"the guest's dirtying loop does not run: {seen!r}")


@contextlib.contextmanager
def keeping_ram(keep):
    """The vireods started inside keep both sides' RAM that verify_memory
    saves (pmemsave) in keep (test-only: VIREO_TEST_MIGRATE_KEEP_RAM)."""
    os.environ["VIREO_TEST_MIGRATE_KEEP_RAM"] = keep
    try:
        yield
    finally:
        del os.environ["VIREO_TEST_MIGRATE_KEEP_RAM"]


def ram_images(keep, h, vm_id):
    """The RAM regions verify_memory saved on h (VIREO_TEST_MIGRATE_KEEP_RAM)."""
    flat = os.path.join(h.run_dir, "vms", vm_id).replace("/", "_")
    return sorted(f for f in os.listdir(keep) if f.startswith(flat + "."))


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def assert_same_ram(keep, src_host, dst_host, vm_id):
    """The RAM regions verify_memory saved on both sides: the same regions,
    each saved file at least 64 MiB, equal byte for byte."""
    src, dst = ram_images(keep, src_host, vm_id), ram_images(keep, dst_host, vm_id)
    assert src and [x.rsplit(".", 2)[1] for x in src] == [x.rsplit(".", 2)[1] for x in dst], \
        (src, dst)
    for a, b in zip(src, dst):
        assert os.path.getsize(os.path.join(keep, a)) >= 64 * MiB
        assert same_bytes(os.path.join(keep, a), os.path.join(keep, b)), (a, b)


def test_idle_vm_migrates_with_memory_verified(cluster, tmp_path):
    keep = str(tmp_path / "ram")
    os.makedirs(keep)
    with keeping_ram(keep):
        c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    # The less RAM, the less to copy, hash and compare. TCG with memory
    # hot-plug: QEMU's dirty tracking of the boot memory needs vireo's
    # padding there (qemu-argv.c, "TCG and a second RAM block").
    create_on(h1, "m1", memory=128, max_memory_mib=256, accel="tcg")
    disk = h1.vm("m1")["disks"][0]
    assert disk["volume"].startswith("nfs/"), disk
    h1.cli("vm", "start", "m1")
    h1.wait_console("m1", BOOT_MARKER, timeout=240)
    qemu_src = h1.vm("m1")["pid"]
    with open(os.path.join(h1.run_dir, "vms", h1.vm("m1")["id"], "qemu.argv")) as f:
        assert "\n131080k,maxmem=262152k\n" in f.read()  # padded by 8 KiB
    h1.guest("m1", "echo written-before-the-move > /migrate-check.txt; sync")
    start_counter(h1, "m1")
    before = max(ticks(h1.console_log("m1")))

    # Through the CLI of h2 (any door: the VM is h1's), following the task.
    out = h2.cli("vm", "migrate", "m1", "--to", "h2", "--verify-memory", timeout=600).stdout
    assert "m1: migrated to h2" in out and "memory verified" in out, out
    task = [t for t in h1.api("GET", "/v1/tasks")["tasks"] if t["kind"] == "migrate"][0]
    assert task["state"] == "succeeded", task
    res = task["result"]
    assert res["memory_verified"] is True and res["to"] == "h2", res
    assert res["bytes"] > 0 and res["total_time_ms"] > 0, res
    # Guest RAM compared by the test itself, byte for byte, not only by the
    # product's digest: the same regions on both sides, equal.
    vm_id = h2.vm("m1")["id"]
    assert_same_ram(keep, h1, h2, vm_id)

    # Runs on h2 now, seen so from both hosts; no QEMU left on h1.
    for h in (h1, h2):
        wait_until(lambda: hosts_of(h, "m1") == ["h2"], 30, what=f"m1 on h2 seen from {h.name}")
    assert h2.vm("m1")["state"] == "running"
    assert not os.path.exists(f"/proc/{qemu_src}") or \
        "qemu" not in open(f"/proc/{qemu_src}/cmdline").read()
    assert not os.path.exists(os.path.join(h1.run_dir, "vms", h2.vm("m1")["id"]))

    # The guest kept running: the counter goes on past where it was, in the
    # console log that continued on h2 (the earlier ticks are in it too).
    counter_goes_on(h1, "m1", before)  # (h1's door: the log is h2's)
    seen = ticks(h2.console_log("m1"))
    assert before in seen, seen[-5:]
    out = h2.guest("m1", "cat /migrate-check.txt")
    assert "written-before-the-move" in out.splitlines(), out  # ticks may interleave
    # Stop works through any door afterwards.
    h1.cli("vm", "stop", "m1", "--force")
    assert h2.vm("m1")["state"] == "stopped"


def error_of(h, method, path, body, status):
    got, doc = h.request(method, path, body)
    assert got == status, (got, doc)
    return doc["error"]["message"]


def test_refusals_and_the_fake_driver_path(cluster, tmp_path, monkeypatch):
    """Fake driver: what is refused at once (naming what to fix), a whole
    migration and one whose memory check fails (the VM runs on at the
    source, nothing is left on the destination); a delete while it migrates
    says so (before, "is running; stop it first")."""
    faults = str(tmp_path / "faults")
    os.makedirs(faults)
    monkeypatch.setenv("VIREO_FAKE_FAULTS", faults)  # the hosts' hold points
    c = cluster(2, listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    create_on(h1, "local", pool=None, memory=64)
    create_on(h1, "shared", memory=64)
    vm_id = h1.vm("shared")["id"]
    # Stopped: a cold move is another command.
    msg = error_of(h1, "POST", "/v1/vms/shared/migrate", {"to": "h2"}, 409)
    assert "use vireo vm move for a stopped VM" in msg, msg
    h1.task_ok("POST", "/v1/vms/shared/start")
    h1.task_ok("POST", "/v1/vms/local/start")
    assert "to: no host 'h9'" in error_of(h2, "POST", "/v1/vms/shared/migrate", {"to": "h9"}, 400)
    assert "to: host 'h1' is where the VM runs" in error_of(
        h1, "POST", "/v1/vms/shared/migrate", {"to": "h1"}, 400)
    assert "bandwidth:" in error_of(h1, "POST", "/v1/vms/shared/migrate",
                                    {"to": "h2", "bandwidth": "fast"}, 400)
    assert "max_downtime_ms:" in error_of(h1, "POST", "/v1/vms/shared/migrate",
                                          {"to": "h2", "max_downtime_ms": 0}, 400)
    # Local disks: the target's pool must exist there, be its own, and hold
    # no volume of the same name (volumes keep their names).
    assert "pool:" in error_of(h1, "POST", "/v1/vms/local/migrate", {"to": "h2", "pool": "x/y"},
                               400)
    msg = error_of(h1, "POST", "/v1/vms/local/migrate", {"to": "h2", "pool": "nope"}, 409)
    assert "host 'h2' has no pool 'nope'" in msg, msg
    msg = error_of(h1, "POST", "/v1/vms/local/migrate", {"to": "h2", "pool": "nfs"}, 409)
    assert "(it is a shared pool)" in msg, msg
    local_disk = h1.vm("local")["disks"][0]["volume"]
    assert local_disk.startswith("default/"), local_disk
    clash = local_disk.split("/")[1]
    h2.task_ok("POST", "/v1/pools/default/volumes", {"name": clash, "size_bytes": MiB})
    msg = error_of(h1, "POST", "/v1/vms/local/migrate", {"to": "h2"}, 409)
    assert f"host 'h2' has a volume 'default/{clash}' already" in msg and "--pool" in msg, msg
    p = h1.cli("vm", "migrate", "local", "--to", "h2", "--pool", "nope", check=False)
    assert p.returncode != 0 and "no pool 'nope'" in p.stderr, p
    # Into another pool of h2's: the disk keeps its name, changes pool; its
    # document and file leave h1.
    other = os.path.join(h2.tmp, "other")
    os.makedirs(other)
    h2.api("POST", "/v1/pools", {"name": "other", "path": other}, expect=201)
    src_file = h1.api("GET", f"/v1/pools/default/volumes/{clash}")["path"]
    assert os.path.exists(src_file)
    # A failed attempt first (the memory check differs): the VM and its disk
    # stay on h1, h2 keeps nothing; the disks' NBD copy was asked for over
    # mutual TLS with the cluster certificate, as the memory stream.
    local_id = h1.vm("local")["id"]
    marker = os.path.join(h1.run_dir, "vms", local_id, "digest-differs")
    open(marker, "w").close()
    task = migrate(h1, "local", {"to": "h2", "pool": "other", "verify_memory": True},
                   expect_state="failed")
    assert "guest RAM differs" in task["error"]["message"], task
    os.unlink(marker)
    assert tls_record(h1, local_id) == [["mirror_start", *cluster_files(h1), "-"],
                                        ["migrate_start", *cluster_files(h1), "-"]]
    assert h1.vm("local")["state"] == "running" and os.path.exists(src_file)
    assert os.listdir(other) == [], os.listdir(other)
    task = migrate(h1, "local", {"to": "h2", "pool": "other"})
    assert task["result"]["volumes"] == [f"other/{clash}"], task
    # Where the time went: every phase, in order, adding up to the total.
    phases = task["result"]["phases_ms"]
    assert sorted(phases) == sorted(["prepare", "disks", "memory_setup", "memory", "verify",
                                     "switch", "commit", "finish"]), phases
    assert all(v >= 0 for v in phases.values()), phases
    assert sum(phases.values()) == task["result"]["total_time_ms"], task["result"]
    assert phases["disks"] > 0 and phases["memory"] > 0, phases  # the fake's 4 queries each
    for h in (h1, h2):
        wait_until(lambda: hosts_of(h, "local") == ["h2"], 30, what=f"local on h2 from {h.name}")
    assert h2.vm("local")["disks"][0]["volume"] == f"other/{clash}"
    assert h2.vm("local")["state"] == "running"
    # Its MACs' claims (the cluster's MAC index) stay through the migration.
    mac = h2.vm("local")["nics"][0]["mac"]
    st, doc = h1.request("POST", "/v1/vms", {"name": "dup", "memory_mib": 64, "host": "h1",
                                             "networks": ["user"], "macs": [mac]})
    assert st == 409 and "is already used by VM 'local' on host 'h2'" in \
        doc["error"]["message"], doc
    vols = {v["key"]: v for v in h2.api("GET", "/v1/volumes")["volumes"]}
    assert vols[f"other/{clash}"]["attached_to"] == "local", vols
    assert os.path.exists(vols[f"other/{clash}"]["path"])
    assert not os.path.exists(src_file)
    assert tls_record(h2, local_id) == [["migrate_prepare", *cluster_files(h2), "-"],
                                        ["mirror_export", *cluster_files(h2), "-"]]
    assert clash not in [v["name"] for v in h1.api("GET", "/v1/volumes?pool=default")["volumes"]]
    # The moved volume is in use on h2 (its relation moved too).
    msg = error_of(h2, "DELETE", f"/v1/pools/other/volumes/{clash}", None, 409)
    assert "local" in msg, msg
    # The peer routes are not served on the Unix socket.
    assert "hosts of the cluster only" in error_of(h2, "POST", "/v1/migrations/incoming",
                                                   {}, 401)
    p = h1.cli("vm", "migrate", "shared", "--to", "h9", check=False)
    assert p.returncode != 0 and "no host 'h9'" in p.stderr, p

    # Memory that differs (the fake's "RAM" changed on the source): failed,
    # the VM runs on at h1, nothing of it on h2.
    marker = os.path.join(h1.run_dir, "vms", vm_id, "digest-differs")
    open(marker, "w").close()
    task = migrate(h1, "shared", {"to": "h2", "verify_memory": True}, expect_state="failed")
    assert "guest RAM differs" in task["error"]["message"], task
    os.unlink(marker)
    # The memory stream between hosts was asked for over mutual TLS with the
    # source's cluster certificate (the fake driver records it in the run dir).
    assert tls_record(h1, vm_id) == [["migrate_start", *cluster_files(h1), "-"]]
    assert h1.vm("shared")["state"] == "running" and hosts_of(h2, "shared") == ["h1"]
    assert not os.path.exists(os.path.join(h2.run_dir, "vms", vm_id))
    assert h2.request("GET", f"/v1/vms/{vm_id}")[1]["host"] == "h1"

    # A whole migration, through h2's door, with the CLI's --async and no
    # --to: the manager picks the target (the only other host). Held as the
    # source starts the stream, the VM's delete is refused for the
    # migration, its task named (the precheck's own words).
    hold, held = (os.path.join(faults, "migrate_start." + end) for end in ("hold", "held"))
    open(hold, "w").close()
    try:
        tid = h2.cli("vm", "migrate", "shared", "--verify-memory", "--async").stdout.strip()
        wait_until(lambda: os.path.exists(held), 60, what="the migration held at its start")
        msg = error_of(h2, "DELETE", "/v1/vms/shared", None, 409)
        assert f"is migrating (task {tid})" in msg, msg
    finally:
        for path in (hold, held):
            if os.path.exists(path):
                os.unlink(path)
    task = wait_until(lambda: (lambda t: t if t["state"] in ("succeeded", "failed") else None)(
        h1.api("GET", f"/v1/tasks/{tid}")), 60, what="migrate task")
    assert task["state"] == "succeeded", task
    assert task["result"]["memory_verified"] is True, task
    assert task["details"]["phase"] == "done", task
    for h in (h1, h2):
        wait_until(lambda: hosts_of(h, "shared") == ["h2"], 30, what=f"on h2 from {h.name}")
    assert h2.vm("shared")["state"] == "running"
    assert not os.path.exists(os.path.join(h1.run_dir, "vms", vm_id))
    # The destination took it with its own cluster certificate.
    assert tls_record(h2, vm_id) == [["migrate_prepare", *cluster_files(h2), "-"]]
    # The name is still taken in the cluster (its claim moved with it), and
    # the VM is h2's for every operation now.
    assert "already exists" in error_of(h1, "POST", "/v1/vms",
                                        {"name": "shared", "host": "h1"}, 409)
    h1.task_ok("POST", "/v1/vms/shared/stop", {"force": True})
    assert h2.vm("shared")["state"] == "stopped"


def tls_record(h, vm_id):
    """The fake driver's record of the TLS a migration asked for on h."""
    with open(os.path.join(h.run_dir, "vms", vm_id, "fake-migration-tls")) as f:
        return [line.split() for line in f.read().splitlines()]


def cluster_files(h):
    d = os.path.join(h.state_dir, "cluster")
    return [os.path.join(d, n) for n in ("ca.crt", "host.crt", "host.key")]


def qemu_of(h, vm_id):
    """PIDs of h's processes whose command line names the VM's id (its QEMU)."""
    found = []
    for pid in h.pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if vm_id.encode() in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


def under_way(h, tid):
    t = h.api("GET", f"/v1/tasks/{tid}")
    d = t.get("details") or {}
    return t if d.get("phase") == "memory" and d.get("bytes_sent", 0) > 0 else None


def test_busy_migration_cancel_and_a_destination_that_dies(cluster, tmp_path):
    keep = str(tmp_path / "ram")
    os.makedirs(keep)
    with keeping_ram(keep):
        c = cluster(3, driver="qemu", listen=False)  # three: one may die with quorum kept
    form(c)
    h1, h2, h3 = c.hosts
    shared_pool(c)
    create_on(h1, "busy", memory=128, accel="tcg")  # less RAM: less to copy; TCG: tuned to it
    vm_id = h1.vm("busy")["id"]
    h1.cli("vm", "start", "busy")
    h1.wait_console("busy", BOOT_MARKER, timeout=240)
    h1.guest("busy", "echo written-before-the-move > /migrate-check.txt; sync")
    start_counter(h1, "busy")
    # A loop dirtying memory all the time: 16 MiB of random bytes written
    # into the guest's /dev/shm (a tmpfs) over and over.
    start_dirtying(h1, "busy", "dd if=/dev/urandom of=/dev/shm/dirty bs=1M count=16 2>/dev/null")

    # Busy guest, h1 -> h2, memory verified: by the product's digests and
    # by the test itself, byte for byte (the regions kept, then removed).
    task = migrate(h1, "busy", {"to": "h2", "verify_memory": True})
    assert task["result"]["memory_verified"] is True, task
    assert_same_ram(keep, h1, h2, vm_id)
    for f in os.listdir(keep):
        os.unlink(os.path.join(keep, f))
    wait_until(lambda: hosts_of(h3, "busy") == ["h2"], 30, what="busy on h2")
    out = h2.guest("busy", "cat /migrate-check.txt")
    assert "written-before-the-move" in out.splitlines(), out  # ticks may interleave
    # The loop still runs on h2 (it came along); then it ends: the slow
    # migrations below are cut midway whatever the guest does, and the
    # loop's TCG burn is make check's CPU (the 16 MiB of random data it left
    # in /dev/shm keep a 2M/s copy going for seconds).
    out = h2.guest("busy", "kill $(cat /tmp/dirty.pid) && echo dirtying-ended-$((40+2))")
    assert "dirtying-ended-42" in out, out
    before = max(ticks(h2.console_log("busy")))
    wait_until(lambda: max(ticks(h2.console_log("busy"))) >= before + 2, 60,
               what="the counter goes on on h2")

    # Cancel midway (slow: 2 MiB/s), through h3's door: runs on at h2,
    # nothing on h3 (no QEMU, no run dir, no documents).
    doc = h3.api("POST", "/v1/vms/busy/migrate",
                 {"to": "h3", "bandwidth": "2M/s", "verify_memory": True}, expect=202)
    tid = doc["task"]["id"]
    wait_until(lambda: under_way(h2, tid), 120, what="the copy under way")
    assert h1.vm("busy")["migration"] == {"task": tid, "to": "h3"}
    shown = h1.cli("vm", "show", "busy").stdout
    assert f"to host h3 (task {tid})" in shown, shown
    msg = error_of(h3, "POST", "/v1/vms/busy/pause", None, 409)
    assert f"is migrating (task {tid})" in msg, msg
    assert qemu_of(h3, vm_id), "no incoming QEMU on h3 while migrating"
    h3.api("POST", f"/v1/tasks/{tid}/cancel", expect=202)
    task = wait_until(lambda: (lambda t: t if t["state"] in
                               ("succeeded", "failed", "cancelled") else None)(
        h2.api("GET", f"/v1/tasks/{tid}")), 120, what="the cancelled task")
    assert task["state"] == "cancelled", task
    assert h2.vm("busy")["state"] == "running" and "migration" not in h2.vm("busy")
    wait_until(lambda: not qemu_of(h3, vm_id), 30, what="no QEMU of the VM on h3")
    assert not os.path.exists(os.path.join(h3.run_dir, "vms", vm_id))
    assert hosts_of(h3, "busy") == ["h2"]
    before = max(ticks(h2.console_log("busy")))
    wait_until(lambda: max(ticks(h2.console_log("busy"))) >= before + 2, 60,
               what="the counter goes on after the cancel")

    # The destination dies midway: the task fails with the reason, the VM
    # runs on at h2.
    doc = h2.api("POST", "/v1/vms/busy/migrate", {"to": "h3", "bandwidth": "2M/s"},
                 expect=202)
    tid = doc["task"]["id"]
    wait_until(lambda: under_way(h2, tid), 120, what="the copy under way")
    c.kill_host(h3)
    task = wait_until(lambda: (lambda t: t if t["state"] in ("succeeded", "failed") else None)(
        h2.api("GET", f"/v1/tasks/{tid}")), 120, what="the task to fail")
    assert task["state"] == "failed", task
    assert "the VM runs on here" in task["error"]["message"], task
    assert h2.vm("busy")["state"] == "running"
    before = max(ticks(h2.console_log("busy")))
    wait_until(lambda: max(ticks(h2.console_log("busy"))) >= before + 2, 60,
               what="the counter goes on after the destination died")
    assert hosts_of(h1, "busy") == ["h2"]


def settled(h, tid, timeout=120):
    return wait_until(lambda: (lambda t: t if t["state"] in ("succeeded", "failed", "cancelled")
                               else None)(h.api("GET", f"/v1/tasks/{tid}")), timeout,
                      what=f"task {tid}")


def test_the_switch_keeps_one_running_copy(cluster, tmp_path):
    """Fake driver, three hosts, test-only fault points
    (VIREO_TEST_MIGRATE_FAULT: a file per point, taken once): the switch's
    transaction without an answer (not applied: the source runs on; applied:
    the destination runs it, never the source), a commit sent before the
    switch (refused: the store does not give the VM to the destination), and
    a source vireod that dies right after the switch (the destination's
    watcher finds the VM is its own and continues it)."""
    faults = tmp_path / "faults"
    faults.mkdir()
    fake = tmp_path / "fake-faults"
    fake.mkdir()
    os.environ["VIREO_TEST_MIGRATE_FAULT"] = str(faults)
    os.environ["VIREO_TEST_MIGRATE_IDLE_MS"] = "3000"
    os.environ["VIREO_FAKE_FAULTS"] = str(fake)
    try:
        c = cluster(3, listen=False)
    finally:
        del os.environ["VIREO_TEST_MIGRATE_FAULT"]
        del os.environ["VIREO_TEST_MIGRATE_IDLE_MS"]
        del os.environ["VIREO_FAKE_FAULTS"]
    form(c)
    h1, h2, h3 = c.hosts
    shared_pool(c)
    create_on(h1, "safe", memory=64)
    vm_id = h1.vm("safe")["id"]
    h1.task_ok("POST", "/v1/vms/safe/start")

    def only_on(h):
        for x in (h1, h2, h3):
            wait_until(lambda: hosts_of(x, "safe") == [h.name], 30,
                       what=f"safe on {h.name} seen from {x.name}")
        assert h.vm("safe")["state"] == "running"
        for x in (h1, h2, h3):
            if x is not h:
                assert not os.path.exists(os.path.join(x.run_dir, "vms", vm_id)), x.name

    # No answer, not applied: proven so (fenced), the VM runs on at h1, and
    # its document's new revision is known (a later change works).
    (faults / "txn-lost").touch()
    task = migrate(h1, "safe", {"to": "h2"}, expect_state="failed")
    assert "runs on here" in task["error"]["message"], task
    assert not (faults / "txn-lost").exists()
    only_on(h1)
    h1.task_ok("POST", "/v1/vms/safe/pause")
    h1.task_ok("POST", "/v1/vms/safe/resume")

    # A VM busy with another task: refused at once (409), not waited for.
    (fake / "snapshot.hold").touch()
    snap = h1.api("POST", "/v1/vms/safe/snapshots", {"name": "s1"}, expect=202)
    wait_until(lambda: (fake / "snapshot.held").exists(), 30, what="the snapshot under way")
    msg = error_of(h1, "POST", "/v1/vms/safe/migrate", {"to": "h2"}, 409)
    assert "cannot migrate VM 'safe': it is busy with another task (snapshot-create" in msg, msg
    (fake / "snapshot.hold").unlink()
    assert h1.wait_task(snap["task"], timeout=60)["state"] == "succeeded"

    # A cancel after the copy (while the RAM is compared) is still
    # honoured: the switch had not happened.
    (fake / "memory_digest.hold").touch()
    doc = h1.api("POST", "/v1/vms/safe/migrate", {"to": "h2", "verify_memory": True},
                 expect=202)
    tid = doc["task"]["id"]
    wait_until(lambda: (fake / "memory_digest.held").exists(), 30, what="the digest under way")
    h1.api("POST", f"/v1/tasks/{tid}/cancel", expect=202)
    (fake / "memory_digest.hold").unlink()
    assert settled(h1, tid)["state"] == "cancelled"
    only_on(h1)

    # No answer, applied: the source settles it from the store and goes on;
    # the VM runs at h2 only.
    (faults / "txn-unknown").touch()
    task = migrate(h1, "safe", {"to": "h2"})
    assert not (faults / "txn-unknown").exists()
    only_on(h2)

    # A commit before the switch: the destination asks the store, which
    # does not give it the VM: refused; the real one after the switch works.
    (faults / "commit-early").touch()
    migrate(h2, "safe", {"to": "h3"})
    assert not (faults / "commit-early").exists()
    only_on(h3)

    # The source vireod dies right after the switch (no commit ever comes):
    # h1's watcher finds the VM is its own in the store and continues it.
    (faults / "exit-after-txn").touch()
    h3.api("POST", "/v1/vms/safe/migrate", {"to": "h1"}, expect=202)
    wait_until(lambda: h3.proc.poll() is not None, 30, what="h3's vireod to exit")
    wait_until(lambda: (h1.request("GET", "/v1/vms/safe")[1] or {}).get("state") == "running",
               60, what="h1 to continue the VM itself")
    assert hosts_of(h2, "safe") == ["h1"]
    h3.start()
    wait_until(lambda: hosts_of(h3, "safe") == ["h1"], 30, what="safe on h1 seen from h3")

    # The peer routes answer a cluster member's certificate only, not any
    # certificate the cluster CA signed.
    pki = Pki.__new__(Pki)
    pki.dir = str(tmp_path / "pki")
    os.makedirs(pki.dir)
    for f in ("ca.crt", "ca.key"):
        shutil.copy(os.path.join(h1.state_dir, "cluster", f), pki.dir)
    pki.ca_cert, pki.ca_key = (os.path.join(pki.dir, "ca.crt"), os.path.join(pki.dir, "ca.key"))
    intruder = pki.host_cert("intruder", ["127.0.0.9"])
    path = f"/v1/migrations/incoming/{vm_id}/commit"
    status, doc = h2.https("POST", path, {"rev": 1}, via=h1, client=intruder)
    assert status == 403 and "names no member" in doc["error"]["message"], (status, doc)
    assert doc["error"]["code"] == "permission-denied", doc
    status, doc = h2.https("POST", path, {"rev": 1}, via=h1)
    assert status == 404, (status, doc)


def test_a_vm_migrates_right_after_its_start(cluster):
    """q35 puts each disk and NIC behind a PCIe root port whose bus number
    the guest's firmware or kernel sets; QEMU's query-pci lists nothing
    behind a port without one. The hardware layout a destination is built
    from must not depend on it (it was read from query-pci: 400 "disk slot
    0 is not in the VM's layout" right after a start). fw sits in OVMF (a
    blank disk; OVMF numbers the buses seconds after its start under TCG),
    gets a second disk hot-plugged and migrates at once after its start,
    then shows its boot manager on h2. boot (the default image) migrates at
    once after its start (SeaBIOS numbers the buses within about 0.1 s, so
    this seldom fell in the window), boots on h2, and migrates back after
    the guest cleared its NIC port's bus number (the window made certain);
    its disk is read on h1."""
    c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    create_on(h1, "fw", memory=128, full_clone=False, blank=True, disk_size_bytes=16 << 20,
              firmware="uefi")
    create_on(h1, "boot", memory=128)
    for name in ("fw", "boot"):
        h1.cli("vm", "start", name)
        if name == "fw":  # a hot-plug at once too: its layout is read as well
            h1.task_ok("POST", "/v1/vms/fw/disks", {"size_bytes": 16 << 20, "pool": "nfs"})
        migrate(h1, name, {"to": "h2"})
        wait_until(lambda: hosts_of(h2, name) == ["h2"], 30, what=f"{name} on h2")
    h2.wait_console("fw", "BdsDxe", timeout=300)
    assert [d["slot"] for d in h2.vm("fw")["disks"]] == [0, 1]
    h2.cli("vm", "stop", "fw", "--force")  # its part is done: no OVMF idling beside boot's
    h2.wait_console("boot", BOOT_MARKER, timeout=300)
    h2.guest("boot", "echo written-on-h2 > /migrate-check.txt; sync")
    # The guest clears the secondary bus number (config byte 0x19) of the
    # root port above its NIC.
    out = h2.guest("boot", "p=$(dirname $(readlink -f /sys/class/net/eth0/device/..)); "
                           "printf '\\000' | dd of=$p/config bs=1 seek=25 count=1 conv=notrunc "
                           "2>/dev/null; od -An -tx1 -j25 -N1 $p/config")
    assert out.split() == ["00"], out
    migrate(h2, "boot", {"to": "h1"})
    wait_until(lambda: hosts_of(h1, "boot") == ["h1"], 30, what="boot back on h1")
    out = h1.guest("boot", "cat /migrate-check.txt; dd if=/dev/vda bs=64k count=16 2>/dev/null "
                           "| wc -c")
    assert out.split()[-2:] == ["written-on-h2", "1048576"], out


def test_the_destination_has_the_seed_drive_the_source_has(cluster):
    """A VM's cloud-init settings dropped while it runs leave its seed drive
    (empty); settings given to a VM started without them find no drive (they
    apply at its next start). The destination was built from the settings
    and lacked the drive, or had one the source lacked: it has the source's
    hardware now (an empty seed drive; none). Blank disks: nothing boots."""
    c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    create_on(h1, "had", memory=64, full_clone=False, blank=True, disk_size_bytes=1 << 20,
              cloud_init={"hostname": "had"})
    create_on(h1, "got", memory=64, full_clone=False, blank=True, disk_size_bytes=1 << 20)
    for name in ("had", "got"):
        h1.cli("vm", "start", name)
    h1.cli("vm", "cloud-init", "set", "had", "--none")
    h1.cli("vm", "cloud-init", "set", "got", "--ci-hostname", "got")

    def argv_on(h, name):
        (pid,) = qemu_of(h, h.vm(name)["id"])
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode().split("\0")
    assert any("drive-cidata0" in a for a in argv_on(h1, "had"))
    assert not any("cidata" in a for a in argv_on(h1, "got"))
    for name in ("had", "got"):
        migrate(h1, name, {"to": "h2"})
        wait_until(lambda: hosts_of(h2, name) == ["h2"], 30, what=f"{name} on h2")
    drives = [a for a in argv_on(h2, "had") if "drive-cidata0" in a]
    assert drives == ["if=none,id=drive-cidata0,media=cdrom,readonly=on",
                      '{"driver":"ide-cd","id":"cidata0","bus":"ide.2","drive":"drive-cidata0"}'], \
        drives
    assert not any("cidata" in a for a in argv_on(h2, "got"))
    # new settings reach the empty drive on h2 (a medium change)
    h2.cli("vm", "cloud-init", "set", "had", "--ci-hostname", "again")
    assert h2.vm("had")["state"] == "running" and h2.vm("got")["state"] == "running"
