"""Nothing slow happens on vireod's event loop or under a lock that readers
need (issue 9, defect 13): readers racing definition changes never touch a
freed definition (checked under the ASan build), a stuck QEMU does not stall
GET, a console nobody drains does not stall the loop, a dnsmasq that
cannot start does not hold the networks lock or the loop, and a store slow
to save one VM's state holds neither the loop nor the other VMs.

The bounds here are HTTP client timeouts and bounded waits far above what
the operation needs (milliseconds) and far below the stall each test guards
against (tens of seconds or forever); none measures speed."""

import json
import os
import shutil
import signal
import socket
import sqlite3
import tempfile
import threading
import time

import pytest

from test_events import history
from test_vm_events import emit
from vireo_harness import BUILD, Daemon, kill_pid, pid_alive, stop_process, wait_until

def _sanitizer_build(kind):
    return os.environ.get(f"VIREO_{kind.upper()}_BUILD",
                          os.path.join(os.path.dirname(BUILD.rstrip("/")), f"build-{kind}"))


MiB = 1 << 20


def answers(d, path, timeout=5):
    """GET path with a client timeout; the status (an exception when the
    daemon did not answer in time)."""
    return d.request("GET", path, timeout=timeout)


# -- 1: vm->spec is read under the VM lock (or from a copy) -------------------

@pytest.fixture(params=["asan", "tsan"])
def sanitized_daemon(request):
    """A fake-driver vireod of the ASan build (a use after free shows when
    the race is lost) or of the TSan build (an unlocked read of what another
    thread writes shows every time, race lost or not)."""
    build = _sanitizer_build(request.param)
    vireod = os.path.join(build, "src", "daemon", "vireod")
    if not os.access(vireod, os.X_OK):
        pytest.skip(f"no {request.param} build at {build} (make build-{request.param}; "
                    f"or set VIREO_{request.param.upper()}_BUILD)")
    d = Daemon(driver="fake", vireod=vireod,
               env={"ASAN_OPTIONS": "abort_on_error=1:detect_leaks=0",
                    "UBSAN_OPTIONS": "print_stacktrace=1",
                    "TSAN_OPTIONS": "halt_on_error=0"})
    try:
        yield d
    finally:
        d.cleanup()


def test_readers_racing_definition_changes_see_consistent_vms(sanitized_daemon):
    d = sanitized_daemon
    d.cli("vm", "create", "race")
    vm_id = d.vm("race")["id"]
    names = {"race", "race-b"}
    stop = threading.Event()
    problems = []

    def check(cond, what):
        if not cond:
            problems.append(what)

    def reader():
        paths = ["/v1/vms", "/v1/vms?view=summary", f"/v1/vms/{vm_id}",
                 f"/v1/vms/{vm_id}/disks", f"/v1/vms/{vm_id}/nics",
                 f"/v1/vms/{vm_id}/console/log"]
        while not stop.is_set():
            for p in paths:
                status, doc = d.request("GET", p)
                check(status == 200, f"GET {p}: {status} {doc}")
                if p == f"/v1/vms/{vm_id}":
                    check(doc["id"] == vm_id and doc["name"] in names, f"GET {p}: {doc}")
                    check(doc["vcpus"] in (1, 2) and len(doc["disks"]) in (1, 2), f"{doc}")
                elif p == "/v1/vms":
                    check([v["name"] for v in doc["vms"]] in ([n] for n in names), f"{doc}")
                elif p.endswith("/disks"):
                    check([x["index"] for x in doc["disks"]] in ([0], [0, 1]), f"{doc}")

    def editor():
        # Renames and resizes; 409 while the disk task holds the VM is fine
        # (and its message reads the VM's name: one of the raced paths).
        for i in range(150):
            for body in ({"name": "race-b" if i % 2 == 0 else "race"},
                         {"vcpus": 2 if i % 2 == 0 else 1},
                         {"memory_mib": 256 if i % 2 == 0 else 512}):
                status, doc = d.request("PATCH", f"/v1/vms/{vm_id}", body)
                check(status in (200, 409), f"PATCH {body}: {status} {doc}")

    def disks():
        for _ in range(40):
            for method, path, body in (("POST", f"/v1/vms/{vm_id}/disks", {"size_bytes": MiB}),
                                       ("DELETE", f"/v1/vms/{vm_id}/disks/1", None)):
                status, doc = d.request(method, path, body)
                check(status in (202, 409), f"{method} {path}: {status} {doc}")
                if status == 202:
                    d.wait_task(doc["task"], timeout=60)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    writers = [threading.Thread(target=editor), threading.Thread(target=disks)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=600)
    stop.set()
    for t in readers:
        t.join(timeout=60)
    log = d.log()
    # (UBSan "runtime error"s elsewhere, e.g. at start-up, are another defect's.)
    for report in ("ERROR: AddressSanitizer", "WARNING: ThreadSanitizer"):
        at = log.find(report)
        assert at < 0, log[at:at + 8000]
    assert d.proc.poll() is None, log[-6000:]
    assert not problems, problems[:5]
    assert d.vm(vm_id)["name"] in names


# -- 4: GET never waits on QMP under the VM lock ------------------------------

def test_get_answers_while_qemu_is_stopped(daemon):
    d = daemon
    # A QEMU that does not answer is the point, not a booted guest: no boot.
    d.cli("vm", "create", "frozen", "--memory", "128M")
    d.cli("vm", "start", "frozen")
    d.remember_qemu_pids()
    pid = d.vm("frozen")["pid"]
    stop_process(pid)  # every thread: QEMU must not answer
    try:
        for _ in range(3):
            status, doc = answers(d, "/v1/vms/frozen")
            assert status == 200 and doc["state"] == "running" and doc["pid"] == pid
            status, doc = answers(d, "/v1/vms")
            assert status == 200 and [v["name"] for v in doc["vms"]] == ["frozen"]
    finally:
        os.kill(pid, signal.SIGCONT)
    # Live values are still reported for a QEMU that answers.
    assert d.vm("frozen")["vcpus_plugged"] == 1
    d.cli("vm", "stop", "frozen", "--force")


# -- 2: a console nobody drains never stalls the loop --------------------------

def test_console_flood_into_a_paused_vm_does_not_stall_the_loop(daemon):
    """A paused guest reads nothing from its serial port, so QEMU stops
    reading the console socket; a client typing into it must not block the
    loop (which also notices dnsmasq and VM exits: probed with dnsmasq)."""
    d = daemon
    d.cli("vm", "create", "quiet", "--memory", "128M")
    d.cli("vm", "start", "quiet")
    d.remember_qemu_pids()
    d.cli("vm", "pause", "quiet")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    try:
        s.connect(d.socket)
        s.sendall(b"GET /v1/vms/quiet/console HTTP/1.1\r\nHost: localhost\r\n"
                  b"Connection: Upgrade\r\nUpgrade: vireo-console\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(1)
            assert chunk, head
            head += chunk
        assert b" 101 " in head.split(b"\r\n")[0], head
        # Type far more than QEMU's socket and ours can hold; stop when our
        # side is full (vireod no longer reads from us) or after 8 MiB.
        s.setblocking(False)
        sent, block = 0, b"x" * 65536
        deadline = time.monotonic() + 20
        while sent < 8 * MiB and time.monotonic() < deadline:
            try:
                sent += s.send(block)
            except BlockingIOError:
                time.sleep(0.05)
        # The loop still runs: it restarts a dnsmasq that died.
        old = d.api("GET", "/v1/networks/default")["dnsmasq_pid"]
        os.kill(old, signal.SIGKILL)
        new = wait_until(lambda: (lambda p: p if p and p != old else None)(
            answers(d, "/v1/networks/default")[1].get("dnsmasq_pid")), 10,
            what="a new dnsmasq (the loop is stalled when there is none)")
        assert pid_alive(new)
    finally:
        s.close()
    d.cli("vm", "stop", "quiet", "--force")


def test_console_client_that_never_reads_loses_output_not_the_loop(daemon):
    """A client with a tiny receive buffer that never reads, on a VM that
    prints a lot: it misses output (or is dropped); the loop goes on."""
    d = daemon
    d.create_and_boot("chatty", memory="128M")
    d.wait_console("chatty", "vireo-guest: booted")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    try:
        s.connect(d.socket)
        s.sendall(b"GET /v1/vms/chatty/console HTTP/1.1\r\nHost: localhost\r\n"
                  b"Connection: Upgrade\r\nUpgrade: vireo-console\r\n\r\n"
                  b"\nfor i in $(seq 4000); do echo vireo-flood-line-$i-xxxxxxxxxxxxxxxxxxxx; "
                  b"done; echo vireo-flood-done\n")
        d.wait_console("chatty", "vireo-flood-done", timeout=120)
        old = d.api("GET", "/v1/networks/default")["dnsmasq_pid"]
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: (lambda p: p if p and p != old else None)(
            answers(d, "/v1/networks/default")[1].get("dnsmasq_pid")), 10,
            what="a new dnsmasq (the loop is stalled when there is none)")
    finally:
        s.close()
    d.cli("vm", "stop", "chatty", "--force")


# -- 3: restarting dnsmasq waits neither on the loop nor under the lock -------

def test_api_and_loop_answer_while_dnsmasq_cannot_start(fake_daemon):
    """dnsmasq.pid made a directory: every restarted dnsmasq exits at once
    without a pidfile, five times over. Meanwhile a VM's exit is noticed
    (the loop runs) and the networks answer (the lock is free)."""
    d = fake_daemon
    net = d.api("GET", "/v1/networks/default")
    d.cli("vm", "create", "bystander")
    d.cli("vm", "start", "bystander")
    pidfile = os.path.join(d.run_dir, "networks", "default", "dnsmasq.pid")
    assert os.path.exists(pidfile)
    os.unlink(pidfile)
    os.mkdir(pidfile)
    try:
        os.kill(net["dnsmasq_pid"], signal.SIGKILL)
        status, doc = d.request("POST", "/v1/vms/bystander/stop", {"force": True})
        assert status == 202, doc
        wait_until(lambda: answers(d, "/v1/vms/bystander")[1]["state"] == "stopped", 5,
                   what="the VM's exit to be noticed")
        for _ in range(5):
            assert answers(d, "/v1/networks/default")[0] == 200
            assert answers(d, "/v1/networks")[0] == 200
        wait_until(lambda: "keeps exiting" in d.log(), 30, what="vireod to give up on dnsmasq")
    finally:
        os.rmdir(pidfile)


# -- 5: a VM's state is saved off the loop (issues 11, 13) --------------------

@pytest.fixture(params=["plain", "tsan"])
def slow_store_daemon(request):
    """A fake-driver vireod (of the TSan build too: the save thread reads
    what the loop writes) whose store writes a test can hold: a file
    put@KEY.hold in d.store_faults holds each write of KEY until it goes
    (state/store-fault.c), as a busy etcd would."""
    vireod = None
    if request.param == "tsan":
        vireod = os.path.join(_sanitizer_build("tsan"), "src", "daemon", "vireod")
        if not os.access(vireod, os.X_OK):
            pytest.skip(f"no tsan build at {vireod} (make build-tsan; or set VIREO_TSAN_BUILD)")
    faults = tempfile.mkdtemp(prefix="vireo-store-faults-")
    holds = tempfile.mkdtemp(prefix="vireo-holds-")
    try:
        d = Daemon(driver="fake", vireod=vireod,
                   env={"VIREO_TEST_STORE_FAULTS": faults, "VIREO_FAKE_FAULTS": holds,
                        "TSAN_OPTIONS": "halt_on_error=0"})
    except BaseException:
        shutil.rmtree(faults)
        shutil.rmtree(holds)
        raise
    d.store_faults, d.holds = faults, holds
    try:
        yield d
    finally:
        for dir in (faults, holds):  # a hold left by a failed test lets go first
            for name in os.listdir(dir):
                if name.endswith(".hold"):
                    os.unlink(os.path.join(dir, name))
        d.cleanup()
        shutil.rmtree(faults)
        shutil.rmtree(holds)


def stored_doc(d, vm_id):
    """The VM's document in the store (SQLite: one host)."""
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    try:
        (text,) = db.execute("SELECT value FROM documents WHERE key = ?",
                             (f"vms/{vm_id}",)).fetchone()
    finally:
        db.close()
    return json.loads(text)


def stored_state(d, vm_id):
    """The state the VM's document in the store says."""
    return stored_doc(d, vm_id)["status"]["state"]


def two_vms_one_save_held(d):
    """Two running VMs, "slow" and "other", and the store's hold on every
    save of "slow" set: their ids and the hold file (removing it lets go)."""
    for name in ("slow", "other"):
        d.cli("vm", "create", name, "--memory", "64M")
        d.cli("vm", "start", name)
    slow_id, other_id = d.vm("slow")["id"], d.vm("other")["id"]
    hold = os.path.join(d.store_faults, f"put@vms+{slow_id}.hold")
    open(hold, "w").close()
    return slow_id, other_id, hold


def test_a_slow_save_holds_neither_the_loop_nor_other_vms(slow_store_daemon):
    d = slow_store_daemon
    slow_id, other_id, hold = two_vms_one_save_held(d)
    try:
        # QEMU pauses "slow" on its own: its save waits in the store.
        emit(d, "slow", {"event": "STOP"})
        wait_until(lambda: os.path.exists(hold[:-len("hold")] + "held"), 30,
                   what="the save of slow's pause to be held in the store")
        # Meanwhile the loop goes on: the other VM's events are followed,
        # and saved.
        emit(d, "other", {"event": "STOP"})
        wait_until(lambda: d.vm("other")["state"] == "paused", 30, interval=0.02,
                   what="other's STOP to be followed while slow's save waits")
        wait_until(lambda: stored_state(d, other_id) == "paused", 30,
                   what="other's pause in the store")
        # The API shows slow's state at once; its document is not written yet.
        assert d.vm("slow")["state"] == "paused"
        assert stored_state(d, slow_id) == "running"
        # slow runs again before its pause is saved: shown at once, and
        # saved after it (below).
        emit(d, "slow", {"event": "RESUME"})
        wait_until(lambda: d.vm("slow")["state"] == "running", 30, interval=0.02,
                   what="slow's RESUME to be followed while its save waits")
        # A child's exit is reaped on the loop, and the stop waits for its
        # save: the store says stopped once the command returns.
        d.cli("vm", "stop", "other", "--force")
        assert stored_state(d, other_id) == "stopped"
        assert stored_state(d, slow_id) == "running"  # its pause still held
    finally:
        if os.path.exists(hold):
            os.unlink(hold)
    # Its saves in order: the pause, then the run after it, never the
    # other way round; each compared on the revision the one before left.
    def slow_states():
        return [data["object"]["status"]["state"] for _, _, data in history(d, "kind=vm")
                if data["id"] == slow_id and data.get("object")]
    wait_until(lambda: slow_states()[-2:] == ["paused", "running"], 30,
               what=f"slow's pause, then its run, in the store ({slow_states()})")
    assert stored_state(d, slow_id) == "running"
    log = d.log()
    assert "cannot save its state" not in log, log[-4000:]
    at = log.find("WARNING: ThreadSanitizer")
    assert at < 0, log[at:at + 8000]
    assert d.proc.poll() is None, log[-6000:]


def test_a_save_stuck_at_shutdown_is_named_and_derived_again_at_start(slow_store_daemon):
    """vireod's end waits for a VM's save while the store moves; one the
    store does not finish for longer than its client waits for a write
    (SQLite: twice its 5 s busy timeout, and 1 s) is given up, named in the
    log with the state it was to write, and nothing it uses is closed
    under it. The next start takes that state from the VM's QEMU and saves
    it."""
    d = slow_store_daemon
    slow_id, _, hold = two_vms_one_save_held(d)
    try:
        emit(d, "slow", {"event": "STOP"})
        wait_until(lambda: os.path.exists(hold[:-len("hold")] + "held"), 30,
                   what="the save of slow's pause to be held in the store")
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(timeout=120)
    finally:
        if os.path.exists(hold):
            os.unlink(hold)
    log = d.log()
    assert ("vm slow: its state 'paused' was not saved (the store did not finish its "
            "write within 11 s)") in log, log[-4000:]
    assert d.proc.returncode == 0, log[-4000:]
    assert stored_state(d, slow_id) == "running"
    d.start()
    assert d.vm("slow")["state"] == "paused"
    assert stored_state(d, slow_id) == "paused"
    at = d.log().find("WARNING: ThreadSanitizer")
    assert at < 0, d.log()[at:at + 8000]


def emit_to(d, vm_id, event):
    """emit() by the VM's id: no GET (which may wait for the VM's lock)."""
    fd = os.open(os.path.join(d.run_dir, "vms", vm_id, "fake-events"),
                 os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(fd, (json.dumps(event) + "\n").encode())
    finally:
        os.close(fd)


def test_a_change_waiting_for_a_slow_save_is_never_saved_half_made(slow_store_daemon):
    """A NIC add's commit (the new definition set, then saved with its MAC
    claim compared) that finds a loop's save under way waits for it holding
    the VM's lock: before, the wait let the lock go, the save thread's next
    round (a RESET meanwhile) wrote the definition with the new NIC
    without its claim compared, and the add's own save then failed (its
    claim lapsed) and put the old definition back in memory only: the
    store kept a NIC that was never added."""
    d = slow_store_daemon
    d.task_ok("POST", "/v1/vms", {"name": "nicky", "memory_mib": 64, "networks": ["user"]})
    d.cli("vm", "start", "nicky")
    vm_id = d.vm("nicky")["id"]
    mac = "52:54:00:0c:2b:01"
    nic_hold = os.path.join(d.holds, "nic_mac_claimed.hold")
    store_hold = os.path.join(d.store_faults, f"put@vms+{vm_id}.hold")
    open(nic_hold, "w").close()
    open(store_hold, "w").close()
    try:
        add = d.api("POST", "/v1/vms/nicky/nics", {"network": "user", "mac": mac}, expect=202)
        wait_until(lambda: os.path.exists(nic_hold[:-len("hold")] + "held"), 60,
                   what="the NIC add held, its MAC claimed")
        db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"), timeout=30)
        try:
            with db:  # its claim lapses: the add's save must fail
                assert db.execute("DELETE FROM documents WHERE key = ?",
                                  (f"cluster/claims/macs/{mac}",)).rowcount == 1
        finally:
            db.close()
        def reset(at):  # dated by QEMU: resets within 1 s of a group's first count once
            return {"event": "RESET", "data": {"guest": True, "reason": "guest-reset"},
                    "timestamp": {"seconds": int(at), "microseconds": int(at % 1 * 1e6)}}
        first = time.time()
        emit_to(d, vm_id, reset(first))  # the loop's save of its count, held in the store
        wait_until(lambda: os.path.exists(store_hold[:-len("hold")] + "held"), 30,
                   what="the save of the reset held in the store")
        os.unlink(nic_hold)  # the add commits: it waits for the held save
        time.sleep(0.5)
        emit_to(d, vm_id, reset(first + 2))  # another save due meanwhile
        # Counted by the loop at once when the add's wait lets the lock go
        # (the defect); otherwise once the add is done: not waited for.
        deadline = time.monotonic() + 5
        while d.log().count("nicky: reset (") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for hold in (nic_hold, store_hold):
            if os.path.exists(hold):
                os.unlink(hold)
    task = d.wait_task(add["task"])
    assert task["state"] == "failed" and "lapsed" in task["error"]["message"], task
    assert mac not in [n["mac"] for n in d.vm("nicky")["nics"]]
    wait_until(lambda: stored_doc(d, vm_id)["status"].get("resets") == 2, 30,
               what="both resets saved")
    assert mac not in [n["mac"] for n in stored_doc(d, vm_id)["spec"].get("nics", [])], \
        stored_doc(d, vm_id)
    log = d.log()
    at = log.find("WARNING: ThreadSanitizer")
    assert at < 0, log[at:at + 8000]
    assert d.proc.poll() is None, log[-6000:]


def test_a_task_waiting_for_a_slow_save_holds_not_the_loop(slow_store_daemon):
    """A task's If-Match compare, the first thing it does under the VM's
    lock, waits for a save under way letting the lock go: the loop goes on
    with the VM's events (and so with every other VM's) meanwhile."""
    d = slow_store_daemon
    slow_id, other_id, hold = two_vms_one_save_held(d)
    try:
        reset = {"event": "RESET", "data": {"guest": True, "reason": "guest-reset"}}
        emit_to(d, slow_id, reset)  # its save held in the store
        wait_until(lambda: os.path.exists(hold[:-len("hold")] + "held"), 30,
                   what="the save of slow's reset held in the store")
        pause = d.api("POST", "/v1/vms/slow/pause", expect=202)  # waits for that save
        time.sleep(0.5)
        emit_to(d, slow_id, reset)
        emit_to(d, other_id, {"event": "STOP"})
        wait_until(lambda: d.vm("other")["state"] == "paused", 30, interval=0.02,
                   what="other's STOP followed while slow's task waits for its save")
        assert d.log().count("slow: reset (") == 2
    finally:
        if os.path.exists(hold):
            os.unlink(hold)
    task = d.wait_task(pause["task"])
    assert task["state"] == "succeeded", task
    assert d.vm("slow")["state"] == "paused"
    log = d.log()
    at = log.find("WARNING: ThreadSanitizer")
    assert at < 0, log[at:at + 8000]
    assert d.proc.poll() is None, log[-6000:]
