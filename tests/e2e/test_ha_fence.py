"""HA fencing on three hosts (docs/ha.md): each host's vireo-fence holds
the host's lease (the record lives on it) and kills its HA QEMUs when it
cannot confirm a renewal in time. Shown here on the multi-host harness with
real TCG guests on a shared pool:
(a) the fence process killed alone: vireod starts it again, it resumes the
    same lease, the host never shows offline, the HA VM's QEMU runs on;
(b) vireod killed with SIGKILL: the host stays online (its record is there
    in every 200 ms sample), the HA VM's QEMU runs on; vireod started again
    adopts the fence and re-attaches the VM;
(c) a host cut off: its fence kills the HA QEMU before the other hosts stop
    seeing its record (monotonic times on this one machine), RUN/fenced
    exists while cut and starts answer 409 fenced; healed, the host comes
    back online, unfenced, and the VM never ran twice."""

import json
import os
import threading
import time

from test_migrate import form, shared_pool
from vireo_harness import pid_alive, wait_until

LEASE_TTL_S = 6  # VO_FENCE_TTL_MS


def create_ha(h, name):
    """An HA VM pinned on h (disk on the shared pool), running; its doc."""
    body = {"name": name, "memory_mib": 128, "host": h.name, "full_clone": True,
            "networks": ["user"], "pool": "nfs", "ha": True}
    status, doc = h.request("POST", "/v1/vms", body)
    deadline = time.monotonic() + 30
    while status == 503 and time.monotonic() < deadline:  # no confirmed manager yet
        time.sleep(0.5)
        status, doc = h.request("POST", "/v1/vms", body)
    assert status == 202, doc
    task = h.wait_task(doc["task"], timeout=180)
    assert task["state"] == "succeeded", task
    task = h.task_ok("POST", f"/v1/vms/{name}/start")
    vm = h.vm(name)
    assert vm["state"] == "running", vm
    h.qemu_pids.add(vm["pid"])
    return vm


def fence_state(h):
    with open(os.path.join(h.run_dir, "fence.state")) as f:
        return json.load(f)


def ha_file(h, vm_id):
    try:
        with open(os.path.join(h.run_dir, "fence", "ha", vm_id)) as f:
            return int(f.read())
    except OSError:
        return None


def state_seen(via, host):
    """host's state in via's GET /v1/hosts (offline: no live record)."""
    for x in via.api("GET", "/v1/hosts")["hosts"]:
        if x["name"] == host.name:
            return x["state"]
    return None


def qemus_of(vm_id):
    """Every live process on this machine whose command line names vm_id
    (the QEMUs of every host: a VM must never have two)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-system-x86_64") and \
                any(vm_id.encode() in a for a in argv):
            found.append(int(entry))
    return [p for p in found if pid_alive(p)]


class Sampler:
    """Samples fn() every interval seconds in a thread, with the monotonic
    time of each sample, until stop()."""

    def __init__(self, fn, interval):
        self.fn, self.interval = fn, interval
        self.samples, self.errors = [], []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self.fn()))
            except Exception as e:  # noqa: BLE001 (kept: the test reports it)
                self.errors.append(repr(e))
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self.thread.join(timeout=30)
        return self.samples


def observe(seconds, sampler):
    """Lets the sampler run for `seconds` (longer than the lease's TTL):
    an observation window, not a synchronisation."""
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end and len(sampler.samples) > 0,
               seconds + 30, interval=0.2, what="the observation window")


def fence_killed_alone_is_restarted_on_the_same_lease(h1, h2, vm):
    qemu = vm["pid"]
    assert ha_file(h1, vm["id"]) == qemu  # on the fence's kill list
    lease = fence_state(h1)["lease"]
    seen = Sampler(lambda: state_seen(h2, h1), 0.2)
    old = h1.kill_fence()
    assert old is not None
    wait_until(lambda: h1.fence_pid() not in (None, old), 10, what="vireod to restart the fence")
    # The new fence resumed the lease and renews it.
    before = time.monotonic() * 1000
    wait_until(lambda: fence_state(h1)["confirmed_until"] > before + 2000, 10,
               what="a renewal by the new fence")
    assert fence_state(h1)["lease"] == lease
    observe(LEASE_TTL_S + 2, seen)
    samples = seen.stop()
    assert not seen.errors, seen.errors
    assert samples and all(s == "online" for _, s in samples), samples
    assert pid_alive(qemu) and h1.vm("ha1")["pid"] == qemu
    assert not os.path.exists(os.path.join(h1.run_dir, "fenced"))
    assert "started the fence process" in h1.log()


def vireod_killed_keeps_the_host_online_and_its_ha_vm(h1, h2, vm):
    qemu, fence = vm["pid"], h1.fence_pid()
    assert fence
    seen = Sampler(lambda: state_seen(h2, h1), 0.2)
    h1.kill9()
    observe(LEASE_TTL_S + 3, seen)  # past the TTL of vireod's own lease
    samples = seen.stop()
    assert not seen.errors, seen.errors
    # The record lives on the fence's lease: present in every sample.
    assert len(samples) > 10 and all(s == "online" for _, s in samples), samples
    assert pid_alive(qemu) and h1.fence_pid() == fence
    assert not os.path.exists(os.path.join(h1.run_dir, "fenced"))
    h1.start()
    # Adopted (not a second fence), the VM re-attached with the same QEMU.
    assert h1.fence_pid() == fence
    assert "adopted the running fence process" in h1.log()
    wait_until(lambda: h1.vm("ha1").get("pid") == qemu, 30, what="ha1 re-attached")
    assert h1.vm("ha1")["state"] == "running"
    assert ha_file(h1, vm["id"]) == qemu
    assert qemus_of(vm["id"]) == [qemu]
    assert state_seen(h2, h1) == "online"


def test_fence_or_vireod_killed_alone_fails_nothing_over(cluster):
    """One cluster for both (each leaves the host as it found it): the
    fence killed alone, then vireod killed with -9."""
    c = cluster(3, driver="qemu", listen=False)
    form(c)
    shared_pool(c)
    h1, h2, _ = c.hosts
    vm = create_ha(h1, "ha1")
    fence_killed_alone_is_restarted_on_the_same_lease(h1, h2, vm)
    vireod_killed_keeps_the_host_online_and_its_ha_vm(h1, h2, vm)


def test_partitioned_host_fences_itself_before_its_record_goes(cluster):
    c = cluster(3, driver="qemu", listen=False)
    form(c)
    shared_pool(c)
    h1, h2, _ = c.hosts
    vm = create_ha(h1, "ha1")
    qemu = vm["pid"]
    twice = Sampler(lambda: len(qemus_of(vm["id"])), 0.1)
    seen = Sampler(lambda: state_seen(h2, h1), 0.1)
    fenced_path = os.path.join(h1.run_dir, "fenced")
    try:
        c.cut_link(h1)
        wait_until(lambda: os.path.exists(fenced_path), 30, what="h1 to fence itself")
        with open(fenced_path) as f:
            fenced = json.load(f)
        assert any(v["vm"] == vm["id"] and v["killed"] for v in fenced["vms"]), fenced
        wait_until(lambda: not pid_alive(qemu), 10, what="the HA QEMU to die")
        wait_until(lambda: any(s == "offline" for _, s in seen.samples), 60,
                   what="h2 to see h1 offline")
        gone_at = next(t for t, s in seen.samples if s == "offline")
        last_online = max(t for t, s in seen.samples if s == "online" and t < gone_at)
        killed_at = fenced["at_monotonic_ms"] / 1000
        print(f"h1 fenced {gone_at - killed_at:.2f} s before h2 saw its record go "
              f"(last seen online {last_online - killed_at:+.2f} s from the kill)")
        assert killed_at < gone_at, (killed_at, gone_at)
        # Fenced while cut: starts refused.
        assert os.path.exists(fenced_path)
        status, doc = h1.request("POST", "/v1/vms/ha1/start", timeout=60)
        # No quorum on h1: 503 in the store's words, and why starts stay
        # refused (fenced) after quorum is back.
        assert status == 503 and doc["error"]["code"] == "unavailable", (status, doc)
        assert "cluster has no quorum" in doc["error"]["message"], doc
        assert "fenced itself" in doc["error"]["message"], doc
    finally:
        c.heal_link(h1)
    wait_until(lambda: state_seen(h2, h1) == "online", 60, what="h1 online again")
    wait_until(lambda: not os.path.exists(fenced_path), 30, what="h1 unfenced")
    assert "no longer fenced" in h1.log()
    counts = twice.stop()
    seen.stop()
    assert not twice.errors, twice.errors
    assert counts and max(n for _, n in counts) <= 1, counts  # never two QEMUs
    assert h1.vm("ha1")["state"] in ("crashed", "stopped"), h1.vm("ha1")
    assert ha_file(h1, vm["id"]) is None
