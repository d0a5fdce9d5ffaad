"""System tests of the events a running VM reports (QMP events, read by
vireod's event loop): a guest paused by a disk I/O error shows `paused` with
`state_reason` `io-error` and runs again after a resume; resets are counted
in the VM's document. The fake driver plays the events through its
fake-events FIFO; the last test makes a real guest run its disk's host out
of space on a tiny tmpfs."""

import hashlib
import json
import os
import re
import socket
import time

from test_events import history
from vireo_harness import BOOT_MARKER, wait_until

MiB = 1 << 20

IO_ERROR = {"event": "BLOCK_IO_ERROR",
            "data": {"device": "", "node-name": "disk0", "operation": "write", "action": "stop",
                     "nospace": True, "reason": "No space left on device"}}


def emit(d, name, *events):
    """Makes the fake driver's VM `name` report events (QMP messages). The
    FIFO is opened without blocking (vireod holds its read end; with vireod
    gone the open fails with ENXIO): retried for a bounded time, then the
    test fails instead of hanging."""
    import errno
    path = os.path.join(d.run_dir, "vms", d.vm(name)["id"], "fake-events")
    deadline = time.monotonic() + 10
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            break
        except OSError as e:
            if e.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    try:
        data = "".join(json.dumps(ev) + "\n" for ev in events).encode()
        assert os.write(fd, data) == len(data)  # small: one atomic write
    finally:
        os.close(fd)


def now_ts():
    """A QMP event timestamp of now (QEMU's clock is the host's)."""
    t = time.time()
    return {"seconds": int(t), "microseconds": int(t % 1 * 1e6)}


def state_of(d, name):
    vm = d.vm(name)
    return vm["state"], vm.get("state_reason")


def wait_for(d, name, state, reason, timeout=10):
    return wait_until(lambda: state_of(d, name) == (state, reason), timeout, interval=0.02,
                      what=f"{name} to be {state}/{reason} (is {state_of(d, name)})")


def test_io_error_pause_shows_and_resume_clears_it(fake_daemon):
    d = fake_daemon
    d.cli("vm", "create", "ev", "--memory", "64M")
    d.cli("vm", "start", "ev")
    assert state_of(d, "ev") == ("running", None)

    # QEMU's order: the stopping I/O error, then the STOP.
    emit(d, "ev", IO_ERROR, {"event": "STOP"})
    wait_for(d, "ev", "paused", "io-error")
    assert "paused (io-error)" in d.cli("vm", "show", "ev").stdout
    assert "write error on disk disk0" in d.log()
    # A change of the VM's document: in the event stream, once the thread
    # that saves it wrote it (docs/internals.md, "Saves off the loop").
    vm_id = d.vm("ev")["id"]

    def last_status():
        statuses = [data["object"]["status"] for _, _, data in history(d, "kind=vm")
                    if data["id"] == vm_id and data.get("object")]
        return statuses[-1]
    wait_until(lambda: {"state": "paused", "state_reason": "io-error"}.items()
               <= last_status().items(), 10, what="the pause in the event stream")

    # Still paused with its reason after a vireod restart.
    d.stop()
    d.start()
    assert state_of(d, "ev") == ("paused", "io-error")

    # vireo vm resume retries (QEMU's cont): running, the reason gone.
    d.cli("vm", "resume", "ev")
    assert state_of(d, "ev") == ("running", None)
    assert "state_reason" not in d.vm("ev")

    # A STOP nobody asked for (not an I/O error) is followed too, and so is
    # the RESUME after it; a pause by vireo says "user".
    emit(d, "ev", {"event": "STOP"})
    wait_for(d, "ev", "paused", "unknown")
    emit(d, "ev", {"event": "RESUME"})
    wait_for(d, "ev", "running", None)
    d.cli("vm", "pause", "ev")
    assert state_of(d, "ev") == ("paused", "user")
    d.cli("vm", "resume", "ev")
    assert state_of(d, "ev") == ("running", None)

    # QEMU throttles BLOCK_IO_ERROR: one from before the last resume may come
    # after it (with its own, older timestamp). It pauses nothing.
    before = time.time()
    d.cli("vm", "pause", "ev")
    d.cli("vm", "resume", "ev")
    late = dict(IO_ERROR, timestamp={"seconds": int(before),
                                     "microseconds": int(before % 1 * 1e6)})
    emit(d, "ev", late)
    wait_until(lambda: "before the last resume" in d.log(), 10, what="the late error in the log")
    assert state_of(d, "ev") == ("running", None)

    # A reported (not stopping) error only shows in the log.
    emit(d, "ev", dict(IO_ERROR, data=dict(IO_ERROR["data"], action="report", nospace=False,
                                           operation="read", reason="Input/output error")))
    wait_until(lambda: "read error on disk disk0" in d.log(), 10, what="the error in the log")
    assert state_of(d, "ev") == ("running", None)

    # The guest powers off as before.
    d.cli("vm", "stop", "ev")
    assert d.vm("ev")["state"] == "stopped"
    assert "state_reason" not in d.vm("ev")


def test_resume_after_io_error_is_followed_while_a_task_runs(faults):
    """QEMU's RESUME after an I/O-error pause shows at once, even while a
    task holds the VM (a resume whose cont met the pause still pending:
    QEMU then sends STOP and RESUME, and the task may finish first)."""
    d = faults
    d.cli("vm", "create", "rt", "--memory", "64M")
    d.cli("vm", "start", "rt")
    emit(d, "rt", IO_ERROR, {"event": "STOP"})
    wait_for(d, "rt", "paused", "io-error")
    hold = os.path.join(d.fault_dir, "resume.hold")
    open(hold, "w").close()
    try:
        task = d.api("POST", "/v1/vms/rt/resume", expect=202)["task"]
        wait_until(lambda: os.path.exists(os.path.join(d.fault_dir, "resume.held")), 10,
                   what="the resume to be under way")
        emit(d, "rt", {"event": "STOP", "data": {"reason": "io-error"}}, {"event": "RESUME"})
        wait_for(d, "rt", "running", None)
    finally:
        os.unlink(hold)
    assert d.wait_task(task)["state"] == "succeeded"
    assert state_of(d, "rt") == ("running", None)


def test_resume_while_still_full_stays_paused(fake_daemon):
    """QEMU throttles BLOCK_IO_ERROR (one a second), not STOP: a resume
    whose retried write fails at once gives RESUME, STOP, and the error up
    to a second later (timestamped after the RESUME). The VM ends paused
    with io-error, not "unknown" (and never shown running)."""
    d = fake_daemon
    d.cli("vm", "create", "th", "--memory", "64M")
    d.cli("vm", "start", "th")
    emit(d, "th", dict(IO_ERROR, timestamp=now_ts()), {"event": "STOP", "timestamp": now_ts()})
    wait_for(d, "th", "paused", "io-error")
    d.cli("vm", "resume", "th")  # the fake emits RESUME
    assert state_of(d, "th") == ("running", None)
    emit(d, "th", {"event": "STOP", "timestamp": now_ts()})  # the retry failed
    wait_for(d, "th", "paused", "unknown")
    marks = d.log().count("write error on disk disk0")
    emit(d, "th", dict(IO_ERROR, timestamp=now_ts()))  # the held-back error
    wait_until(lambda: d.log().count("write error on disk disk0") > marks, 10,
               what="the throttled error in the log")
    wait_for(d, "th", "paused", "io-error")
    # Space freed: the next resume runs it.
    d.cli("vm", "resume", "th")
    assert state_of(d, "th") == ("running", None)


def test_stop_while_a_task_holds_the_vm_is_read_back_when_it_ends(faults):
    """A STOP read while a task holds the VM is left to the task; the task
    then asks QEMU (query-status) when it ends, so a STOP it did not cause
    (a resume's retried write failing at once) does not leave the VM shown
    running while it is paused. The throttled I/O error coming after gives
    the reason."""
    d = faults
    d.cli("vm", "create", "jh", "--memory", "64M")
    d.cli("vm", "start", "jh")
    emit(d, "jh", IO_ERROR, {"event": "STOP"})
    wait_for(d, "jh", "paused", "io-error")
    # The resume is held after its cont (RESUME sent), before it ends.
    hold = os.path.join(d.fault_dir, "query_resources.hold")
    open(hold, "w").close()
    try:
        task = d.api("POST", "/v1/vms/jh/resume", expect=202)["task"]
        wait_until(lambda: os.path.exists(os.path.join(d.fault_dir, "query_resources.held")),
                   10, what="the resume to be under way")
        wait_for(d, "jh", "running", None)  # its RESUME after an io-error pause
        marks = d.log().count("read error on disk disk0")
        # QEMU stops again; a reported error after it marks that the loop read it.
        emit(d, "jh", {"event": "STOP", "timestamp": now_ts()},
             dict(IO_ERROR, data=dict(IO_ERROR["data"], action="report", operation="read")))
        wait_until(lambda: d.log().count("read error on disk disk0") > marks, 10,
                   what="the loop to read the STOP")
    finally:
        os.unlink(hold)
    assert d.wait_task(task)["state"] == "succeeded"
    assert state_of(d, "jh") == ("paused", "unknown")
    emit(d, "jh", dict(IO_ERROR, timestamp=now_ts()))
    wait_for(d, "jh", "paused", "io-error")
    # The same for a task that is not a resume: a reboot held by the fake.
    os.unlink(os.path.join(d.fault_dir, "query_resources.held"))
    d.cli("vm", "resume", "jh")
    assert state_of(d, "jh") == ("running", None)
    open(hold, "w").close()
    try:
        task = d.api("POST", "/v1/vms/jh/reboot", expect=202)["task"]
        wait_until(lambda: os.path.exists(os.path.join(d.fault_dir, "query_resources.held")),
                   10, what="the reboot to be under way")
        marks = d.log().count("read error on disk disk0")
        emit(d, "jh", {"event": "STOP"},
             dict(IO_ERROR, data=dict(IO_ERROR["data"], action="report", operation="read")))
        wait_until(lambda: d.log().count("read error on disk disk0") > marks, 10,
                   what="the loop to read the STOP")
    finally:
        os.unlink(hold)
    assert d.wait_task(task)["state"] == "succeeded"
    assert state_of(d, "jh") == ("paused", "unknown")


def test_io_error_while_starting_shows_once_started(faults):
    """An I/O error that stops the guest between the start's cont and the
    start task's end (the VM still `starting`, left to its task) shows as
    paused/io-error once the start is done, not running."""
    d = faults
    d.cli("vm", "create", "st", "--memory", "64M")
    hold = os.path.join(d.fault_dir, "resumed.hold")
    open(hold, "w").close()
    try:
        task = d.api("POST", "/v1/vms/st/start", expect=202)["task"]
        wait_until(lambda: os.path.exists(os.path.join(d.fault_dir, "resumed.held")), 10,
                   what="the start's cont")
        assert d.vm("st")["state"] == "starting"
        emit(d, "st", dict(IO_ERROR, timestamp=now_ts()), {"event": "STOP"})
        wait_until(lambda: "write error on disk disk0" in d.log(), 10,
                   what="the loop to read the error")
    finally:
        os.unlink(hold)
    assert d.wait_task(task)["state"] == "succeeded"
    assert state_of(d, "st") == ("paused", "io-error")
    d.cli("vm", "resume", "st")
    assert state_of(d, "st") == ("running", None)


def reset_at(t):
    """A guest's RESET as QEMU reports it, dated t (wall seconds)."""
    return {"event": "RESET", "data": {"guest": True, "reason": "guest-reset"},
            "timestamp": {"seconds": int(t), "microseconds": int(t % 1 * 1e6)}}


def test_resets_are_counted_in_the_document(fake_daemon):
    d = fake_daemon
    d.cli("vm", "create", "rs", "--memory", "64M")
    d.cli("vm", "start", "rs")
    assert "resets" not in d.vm("rs")

    d.cli("vm", "reboot", "rs")  # vireo's reset: QEMU reports it as well
    wait_until(lambda: d.vm("rs").get("resets") == 1, 10, what="the first reset")
    # A reboot of a guest SeaBIOS started: two RESETs ~40 ms apart (the
    # firmware resets once more), counted once: the resets within a second
    # of the first of a group are one. Dated by QEMU's timestamps (here a
    # few seconds ahead: whenever vireod reads them, they are a new group).
    t = time.time() + 5
    emit(d, "rs", reset_at(t), reset_at(t + 0.04))
    vm = wait_until(lambda: d.vm("rs") if d.vm("rs").get("resets") == 2 else None, 10,
                    what="the guest's reset")
    assert vm["state"] == "running" and vm["last_reset_at"]
    wait_until(lambda: d.log().count("rs: reset (") == 3, 10, what="the reboot's second reset")
    assert "the same reboot as the last one counted" in d.log()
    assert d.vm("rs")["resets"] == 2
    # Each reset is a change of the VM's document: in the event stream (one
    # coming within 250 ms of the last saved is saved a little later).
    def resets_seen():
        return [data["object"]["status"].get("resets") for _, _, data in history(d, "kind=vm")
                if data["id"] == vm["id"] and data.get("object")]
    wait_until(lambda: resets_seen()[-1] == 2, 10, what="the second reset in the store")
    assert resets_seen()[-2:] == [1, 2], resets_seen()
    assert "resets:" in d.cli("vm", "show", "rs").stdout

    # A guest in a reset loop (a reset every 40 ms for 2 s: 50) counts about
    # once a second: 2; read at once, one or two writes of the document
    # carry the last count (saved at most every 250 ms).
    from test_records import changes, docs
    key = f"vms/{vm['id']}"
    writes_before = len(changes(d, key))
    emit(d, "rs", *[reset_at(t + 10 + i * 0.04) for i in range(50)])
    wait_until(lambda: d.log().count("rs: reset (") == 53, 10, what="the loop's resets")
    wait_until(lambda: docs(d, "vms/")[key][0]["status"].get("resets") == 4, 10,
               what="the last count in the store")
    assert d.vm("rs")["resets"] == 4
    assert len(changes(d, key)) - writes_before <= 3

    # Kept across a vireod restart, cleared by the next start.
    d.stop()
    d.start()
    assert d.vm("rs")["resets"] == 4
    d.cli("vm", "stop", "rs")
    d.cli("vm", "start", "rs")
    assert "resets" not in d.vm("rs")


def fill(path, size):
    with open(path, "wb") as f:
        chunk = b"\xa5" * MiB
        for _ in range(size // MiB):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


# The guest's data: one MiB of `yes vireo-io-error` output, written again
# and again; the tmpfs keeps FREE free and the guest writes WRITTEN, so
# its writes run the host out of space after about FREE.
BLOCK = (b"vireo-io-error\n" * (MiB // 15 + 1))[:MiB]
FREE = 2 * MiB
WRITTEN = 8 * MiB


def guest_writes(daemon, name, seek, rc_file, delay=0):
    """Starts WRITTEN bytes of BLOCKs written to the guest's /dev/vdb from
    MiB `seek` on, in the background (the console must stay usable while a
    write waits in the paused VM): one dd per MiB with O_DIRECT, so each
    write reaches QEMU at once (no page cache to fill first, no writeback
    to wait for) and one held by the paused VM completes on the resume.
    rc_file gets 0 once every write succeeded, errors go to rc_file.err."""
    daemon.guest(name, f"(sleep {delay}; yes vireo-io-error | head -c {MiB} >/tmp/blk; rc=0; "
                       f"i=0; while [ $i -lt {WRITTEN // MiB} ]; do dd if=/tmp/blk of=/dev/vdb "
                       f"bs=1M count=1 seek=$(({seek} + i)) oflag=direct 2>>{rc_file}.err "
                       f"|| rc=1; i=$((i + 1)); done; echo $rc >{rc_file}) "
                       f"</dev/null >/dev/null 2>&1 & true")


def until_paused_timeout():
    """How long the guest may take to write FREE (and QEMU to pause): a
    bound that grows with what must be written, generous for TCG on a busy
    host (a MiB takes well under a second there)."""
    return 60 + 30 * FREE // MiB


def test_guest_out_of_disk_space_pauses_and_resumes(tmpfs_pool):
    daemon, mnt = tmpfs_pool("32m")
    try:
        out_of_disk_space(daemon, mnt)
    finally:  # shown when it fails
        print("\n".join(line for line in daemon.log().splitlines() if "vm enospc" in line))


def out_of_disk_space(daemon, mnt):
    name = "enospc"
    daemon.cli("vm", "create", name, "--memory", "256M")
    daemon.task_ok("POST", "/v1/pools/small/volumes",
                   {"name": "data", "size_bytes": 64 * MiB, "format": "qcow2"})
    daemon.task_ok("POST", f"/v1/vms/{name}/disks", {"volume": "small/data"})
    st = os.statvfs(mnt)
    filler = os.path.join(mnt, "filler")
    fill(filler, st.f_bavail * st.f_frsize - FREE)
    daemon.cli("vm", "start", name)
    daemon.wait_console(name, BOOT_MARKER)
    daemon.remember_qemu_pids()
    daemon_vm_id = daemon.vm(name)["id"]

    began = time.monotonic()
    guest_writes(daemon, name, 0, "/tmp/dd.rc")
    wait_for(daemon, name, "paused", "io-error", timeout=until_paused_timeout())
    shown = time.time()
    print(f"the guest ran the host out of space in {time.monotonic() - began:.1f} s")
    # The host's tmpfs is what ran out.
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    assert free < MiB, f"{free} bytes still free on the tmpfs"
    # QEMU's time of the error, as vireod logged it with the event.
    error_at = float(re.search(r"write error on disk \S+: .*at (\d+\.\d+)\)", daemon.log())[1])
    print(f"paused/io-error shown by the API {shown - error_at:.3f} s after QEMU's error")
    assert "paused (io-error)" in daemon.cli("vm", "show", name).stdout
    assert "No space left on device" in daemon.log()

    # Room again: the resume retries the write, which completes.
    os.unlink(filler)
    daemon.cli("vm", "resume", name)
    wait_for(daemon, name, "running", None)
    out = daemon.guest(name, "read -r up _ </proc/uptime; end=$((${up%.*} + 90)); "
                             "until [ -s /tmp/dd.rc ]; do read -r up _ </proc/uptime; "
                             "[ ${up%.*} -ge $end ] && break; sleep 0.2; done; "
                             "cat /tmp/dd.rc /tmp/dd.rc.err; echo 3 >/proc/sys/vm/drop_caches; "
                             f"head -c {WRITTEN} /dev/vdb | md5sum", timeout=150)
    want = hashlib.md5(BLOCK * (WRITTEN // MiB)).hexdigest()
    assert out.split()[0] == "0", out
    assert want in out, out
    assert state_of(daemon, name) == ("running", None)

    # The same while vireod is not running: after its restart QEMU's own
    # status (io-error) gives the reason.
    st = os.statvfs(mnt)
    fill(filler, st.f_bavail * st.f_frsize - FREE)
    guest_writes(daemon, name, WRITTEN // MiB, "/tmp/dd2.rc", delay=2)
    daemon.kill9()
    qmp = os.path.join(daemon.run_dir, "vms", daemon_vm_id, "qmp.sock")
    wait_until(lambda: qmp_status(qmp) == "io-error", until_paused_timeout(), interval=0.2,
               what="QEMU to pause on the I/O error")
    daemon.start()
    assert state_of(daemon, name) == ("paused", "io-error")
    os.unlink(filler)
    daemon.cli("vm", "resume", name)
    out = daemon.guest(name, "read -r up _ </proc/uptime; end=$((${up%.*} + 90)); "
                             "until [ -s /tmp/dd2.rc ]; do read -r up _ </proc/uptime; "
                             "[ ${up%.*} -ge $end ] && break; sleep 0.2; done; "
                             "cat /tmp/dd2.rc /tmp/dd2.rc.err; echo 3 >/proc/sys/vm/drop_caches; "
                             f"dd if=/dev/vdb bs=1M skip={WRITTEN // MiB} count={WRITTEN // MiB} "
                             "2>/dev/null | md5sum", timeout=150)
    assert out.split()[0] == "0", out
    assert hashlib.md5(BLOCK * (WRITTEN // MiB)).hexdigest() in out, out
    daemon.cli("vm", "stop", name, "--force")


def qmp_status(path):
    """QEMU's run state, asked on its command monitor (free while vireod is
    not running)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        f = s.makefile("rw")
        json.loads(f.readline())  # greeting
        for cmd in ("qmp_capabilities", "query-status"):
            f.write(json.dumps({"execute": cmd}) + "\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if "return" in msg or "error" in msg:
                    break
        return msg.get("return", {}).get("status")
