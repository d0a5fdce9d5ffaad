"""A failed HA start is tried again (docs/ha.md, "When a restart's start
fails"), on three fake-driver hosts (no guest, no QEMU): h1 dies with two HA
VMs; the manager moves them to the other hosts, whose starts fail by the
fake driver's per-VM fault ($VIREO_FAKE_FAULTS/start@NAME, "N EIO": the next
N starts of NAME fail). ok1's first start fails: it is tried again after the
backoff and runs. bad1's starts keep failing: after the restart limit's 3
starts it is left crashed with the reason. Each retry and the give-up are
tasks of kind "ha" on the host that retried (events). The restart limit's
count lives in the VM's document ("ha_restarts"): after bad1's first failed
start, the vireod of the host that holds it (the manager, or the other) is
killed (SIGKILL) and started again: it follows bad1 again from its
document, still 3 starts in all (a count in memory would forget bad1, or
give it a fresh budget).

pre1's first start on its new host is refused before its start task runs
(the daemon's test fault point $VIREO_FAKE_FAULTS/ha_start_refused@NAME):
it is marked ("ha_start_failed") and followed like a failed start task,
tried again after 2 s and runs (it used to be dropped: left stopped, its
failure in no task). off1's starts keep failing; after its first failure
HA is switched off (the CLI): the mark goes with it (it would be tried
again, unasked, when HA is switched on later, or by vireod's restart), and
HA on again starts nothing.

Then, on ok1 (still within its restart window): a user's start that fails
(the same fault) is not an HA start: vireod's restart does not follow it
(it would start ok1 behind the user's back), where it follows bad1's. And a
start whose "starting" cannot be saved to the store (the store's test fault
point, $VIREO_TEST_STORE_FAULTS/put@vms+ID) is refused: nothing runs, the
VM stays stopped, and the next start works. So is one whose save landed
but got no answer (lost@put@vms+ID, "ETIMEDOUT": the outcome unknown): its
document, which said "starting", is put back to "stopped", and the next
start works (with the document's revision unknown to the host it failed),
also when the read-backs go unanswered too: the next start takes the
document's revision up.

test_handovers_and_fenced_hosts: the manager's hand-overs that fail, and
a host fenced while HA starts wait on it (its docstring);
test_new_manager_takes_up_a_handover: a new manager follows one too;
test_unanswering_host_holds_up_no_recovery: a stopped vireod holds up no
other host's recovery; test_note_lands_not_on_a_host_back_online and
test_move_off_a_fenced_host_*: the manager's writes into a host's
namespace race that host's return (their docstrings);
test_chosen_host_dies_during_its_handover: a hand-over that failed on a
host gone meanwhile never replaces the VM's newer one;
test_start_that_hangs_holds_up_no_handover: a host's worker hands over
the VMs queued meanwhile before it waits for the start tasks."""

import json
import os
import signal
import time

from test_drs import etcd_keys, etcdctl
from test_ha_fence import fence_state
from test_migrate import create_on, form, hosts_of, migrate, shared_pool
from vireo_harness import wait_until


def ha_messages(hosts):
    out = []
    for h in hosts:
        for t in h.api("GET", "/v1/tasks")["tasks"]:
            if t.get("kind") == "ha":
                out.append((t.get("result") or {}).get("message") or t.get("message") or "")
    return out


def test_failed_ha_start_is_retried_then_given_up(cluster, tmp_path, monkeypatch):
    faults = tmp_path / "faults"
    faults.mkdir()
    monkeypatch.setenv("VIREO_FAKE_FAULTS", str(faults))
    store_faults = tmp_path / "store-faults"
    store_faults.mkdir()
    monkeypatch.setenv("VIREO_TEST_STORE_FAULTS", str(store_faults))
    c = cluster(3, driver="fake", listen=False)
    form(c)
    shared_pool(c)
    manager = c.hosts[0].api("GET", "/v1/cluster")["manager"]
    # The victim is not the manager: the recovery starts at once.
    victim = next(h for h in c.hosts if h.name != manager)
    others = [h for h in c.hosts if h is not victim]
    for name in ("ok1", "bad1", "pre1", "off1"):
        create_on(victim, name, blank=True, disk_size_bytes=16 << 20, ha=True)
        victim.task_ok("POST", f"/v1/vms/{name}/start")
    (faults / "start@ok1").write_text("1 EIO\n")
    (faults / "start@bad1").write_text("9 EIO\n")
    (faults / "ha_start_refused@pre1").write_text("1 EIO\n")
    (faults / "start@off1").write_text("9 EIO\n")
    c.kill_host(victim)
    seen = others[0]
    t0 = time.monotonic()

    def host_of(name):
        return next((v for v in seen.api("GET", "/v1/vms")["vms"] if v["name"] == name), {})

    def is_on_other_host(name, state, why=""):
        # One read for all: two reads could see the state on the dead host
        # and the host after the move.
        v = host_of(name)
        return (v.get("state") == state and v.get("host") != victim.name
                and why in v.get("exit_reason", ""))

    off1_holder = ha_off_forgets_failure(others, host_of, is_on_other_host, faults)
    wait_until(lambda: is_on_other_host("ok1", "running"), 90,
               what="ok1 running again after its failed start")
    print(f"\nok1 running after {time.monotonic() - t0:.1f} s")
    assert (faults / "start@ok1").exists() is False  # its one failure was used
    # The move's start and the retry: both counted in its document.
    ok1_host = next(h for h in others if h.name == host_of("ok1")["host"])
    ok1_restarts = ok1_host.vm("ok1").get("ha_restarts") or []
    assert len(ok1_restarts) == 2, ok1_host.vm("ok1")
    # Its retry's success is noted by the host's retry runner (a round every
    # 250 ms) once the start task has ended: waited for here, as a vireod
    # killed before that round would not note it (the kill below may hit
    # ok1's host).
    wait_until(lambda: any("vm ok1: started after 1 failed HA starts" in m
                           for m in ha_messages(others)), 30,
               what="ok1's successful retry noted")
    # bad1's first start failed: its host's vireod dies and comes back.
    wait_until(lambda: is_on_other_host("bad1", "stopped", "start failed"), 90,
               what="bad1's first HA start failed")
    before = ha_messages(others)  # the tasks of the vireod that is restarted
    holder = next(h for h in others if h.name == host_of("bad1")["host"])
    counted = holder.vm("bad1").get("ha_restarts") or []
    print(f"bad1 on {holder.name} (manager: {holder.name == manager}), "
          f"{len(counted)} HA starts counted; its vireod restarted")
    assert 1 <= len(counted) <= 3, holder.vm("bad1")
    holder.kill9()
    holder.start()
    # Landed on its new host it is "crashed" too ("host ... went offline"),
    # before any start: given up, the reason is the restart limit.
    wait_until(lambda: is_on_other_host("bad1", "crashed", "restart limit"), 90,
               what="bad1 given up (crashed)")
    print(f"bad1 crashed after {time.monotonic() - t0:.1f} s")
    owner = next(h for h in others if h.name == host_of("bad1")["host"])
    vm = owner.vm("bad1")
    reason = vm["status"]["exit_reason"] if "status" in vm else vm.get("exit_reason")
    assert "restart limit" in reason and "failed 3 times" in reason, vm
    assert "injected fault" in reason, vm
    # 3 starts only (the limit): 9 - 3 failures left in the fault file.
    assert (faults / "start@bad1").read_text().startswith("6"), \
        (faults / "start@bad1").read_text()
    messages = before + ha_messages(others)
    assert any("vm ok1: its HA start failed" in m and "tried again in 2 s" in m
               for m in messages), messages
    assert any("vm ok1: started after 1 failed HA starts" in m for m in messages), messages
    assert any("vm bad1: its HA start failed" in m and "tried again in 4 s" in m
               for m in messages), messages
    assert any(m.startswith("vm bad1: restart limit") for m in messages), messages
    off1_holder.cli("vm", "set", "off1", "--ha", "on")
    # Given up: it stays crashed (nothing starts it again behind the user's back).
    time.sleep(3)
    assert host_of("bad1").get("state") == "crashed"
    assert os.path.exists(faults / "start@bad1")
    refused_start_is_retried(others, host_of, messages, faults)
    # off1, HA on again since: not tried again (its failure was forgotten).
    vm = off1_holder.vm("off1")
    assert vm["state"] == "stopped" and "ha_start_failed" not in vm, vm
    assert (faults / "start@off1").read_text() == off1_faults_left[0], "off1 started again"
    # A live migration keeps ok1's count (the destination's first save wrote
    # its document without "ha_restarts": a fresh budget).
    dest = next(h for h in others if h is not ok1_host)
    migrate(ok1_host, "ok1", {"to": dest.name})
    assert hosts_of(dest, "ok1") == [dest.name]
    vm = dest.vm("ok1")
    assert vm["state"] == "running", vm
    assert vm.get("ha_restarts") == ok1_restarts, vm
    user_start_failure_is_not_resumed(dest, faults)
    unsaved_start_is_refused(dest, store_faults)
    lost_start_save_is_put_back(dest, store_faults)
    unread_start_save_is_taken_up(dest, store_faults, faults)


off1_faults_left = [None]


def ha_off_forgets_failure(others, host_of, is_on_other_host, faults):
    """off1's first HA start on its new host failed: marked, followed. HA
    off drops the mark (HA on again, later, retries nothing: checked at the
    end of the test). Quick: bad1's restart window runs meanwhile. Its
    holder."""
    wait_until(lambda: is_on_other_host("off1", "stopped", "start failed"), 90,
               what="off1's first HA start failed")
    holder = next(h for h in others if h.name == host_of("off1")["host"])
    assert holder.vm("off1").get("ha_start_failed") is True, holder.vm("off1")
    holder.api("PATCH", "/v1/vms/off1", {"ha": False})
    # A retry already under way ends (its failure no longer marks: no HA).
    wait_until(lambda: holder.vm("off1")["state"] == "stopped", 30, what="off1 stopped")
    vm = holder.vm("off1")
    assert vm["ha"] is False and "ha_start_failed" not in vm, vm
    off1_faults_left[0] = (faults / "start@off1").read_text()
    return holder


def refused_start_is_retried(others, host_of, messages, faults):
    """pre1's first start on its new host was refused before its task: it
    was tried again after 2 s and runs, both starts counted (messages: the
    "ha" tasks, some of a vireod since restarted)."""
    wait_until(lambda: host_of("pre1").get("state") == "running", 30,
               what="pre1 running after its refused start")
    assert not (faults / "ha_start_refused@pre1").exists()
    holder = next(h for h in others if h.name == host_of("pre1")["host"])
    vm = holder.vm("pre1")
    assert len(vm.get("ha_restarts") or []) == 2 and "ha_start_failed" not in vm, vm
    assert any("vm pre1: its HA start failed (test fault: HA start of VM 'pre1' refused"
               in m and "tried again in 2 s" in m for m in messages), messages


def user_start_failure_is_not_resumed(host, faults):
    """ok1 (HA, 2 HA starts within the window) fails a user's start; its
    host's vireod restarts: the HA retry does not take it up (a failed HA
    start would be tried again after 4 s)."""
    host.task_ok("POST", "/v1/vms/ok1/stop")
    (faults / "start@ok1").write_text("1 EIO\n")
    doc = host.api("POST", "/v1/vms/ok1/start", {}, expect=202)
    assert host.wait_task(doc["task"])["state"] == "failed"
    vm = host.vm("ok1")
    assert vm["state"] == "stopped" and "start failed" in vm.get("exit_reason", ""), vm
    assert len(vm.get("ha_restarts") or []) == 2, vm
    assert not (faults / "start@ok1").exists()
    host.kill9()
    host.start()
    until = time.monotonic() + 8
    while time.monotonic() < until:
        vm = host.vm("ok1")
        assert vm["state"] == "stopped", vm
        time.sleep(0.25)
    assert len(vm.get("ha_restarts") or []) == 2, vm
    assert "vm ok1: its HA start had failed" not in host.log()


def unsaved_start_is_refused(host, store_faults):
    """A start whose save of "starting" fails starts nothing."""
    before = host.vm("ok1")
    (store_faults / f"put@vms+{before['id']}").write_text("1 EIO\n")
    doc = host.api("POST", "/v1/vms/ok1/start", {}, expect=202)
    task = host.wait_task(doc["task"])
    assert task["state"] == "failed", task
    message = task["error"]["message"]
    assert "cannot be saved to the store" in message and "nothing was started" in message, task
    assert not (store_faults / f"put@vms+{before['id']}").exists()
    vm = host.vm("ok1")
    assert vm["state"] == "stopped", vm
    assert vm.get("exit_reason") == before.get("exit_reason"), vm
    host.task_ok("POST", "/v1/vms/ok1/start")
    assert host.vm("ok1")["state"] == "running"


def stored_state(host, vm_id):
    """The state in the VM's document in etcd."""
    key = next(k for k in etcd_keys(host, "h/") if k.endswith(f"/vms/{vm_id}"))
    return json.loads(etcdctl(host, "get", "--print-value-only", key))["status"]["state"]


def lost_start_save_is_put_back(host, store_faults):
    """A start whose save of "starting" landed without an answer: refused,
    and the document put back to "stopped"; the next start works."""
    host.task_ok("POST", "/v1/vms/ok1/stop")
    vm_id = host.vm("ok1")["id"]
    (store_faults / f"lost@put@vms+{vm_id}").write_text("1 ETIMEDOUT\n")
    doc = host.api("POST", "/v1/vms/ok1/start", {}, expect=202)
    task = host.wait_task(doc["task"])
    assert task["state"] == "failed", task
    assert "nothing was started" in task["error"]["message"], task
    assert not (store_faults / f"lost@put@vms+{vm_id}").exists()
    assert host.vm("ok1")["state"] == "stopped"
    assert stored_state(host, vm_id) == "stopped"
    assert "landed: its document is put back" in host.log()
    host.task_ok("POST", "/v1/vms/ok1/start")
    assert host.vm("ok1")["state"] == "running"


def unread_start_save_is_taken_up(host, store_faults, faults):
    """The same lost answer, and the read-backs unanswered too (the
    daemon's fault point start_read_back@NAME): whether the write landed is
    unknown, and the document says "starting" at a revision the host does
    not know. The next start takes that revision up and runs (every save of
    the VM was refused until vireod restarted)."""
    host.task_ok("POST", "/v1/vms/ok1/stop")
    vm_id = host.vm("ok1")["id"]
    (store_faults / f"lost@put@vms+{vm_id}").write_text("1 ETIMEDOUT\n")
    (faults / "start_read_back@ok1").write_text("3 ETIMEDOUT\n")
    doc = host.api("POST", "/v1/vms/ok1/start", {}, expect=202)
    task = host.wait_task(doc["task"])
    assert task["state"] == "failed", task
    assert not (faults / "start_read_back@ok1").exists()
    assert stored_state(host, vm_id) == "starting"
    assert host.vm("ok1")["state"] == "stopped"
    host.task_ok("POST", "/v1/vms/ok1/start")
    assert host.vm("ok1")["state"] == "running"
    assert stored_state(host, vm_id) == "running"
    assert "had landed (revision" in host.log()


def fake_hosts(cluster, tmp_path, monkeypatch, n):
    """A cluster of n fake-driver hosts with a shared pool (daemon fault
    points in the returned directory): (cluster, faults, manager, the
    other hosts)."""
    faults = tmp_path / "faults"
    faults.mkdir()
    monkeypatch.setenv("VIREO_FAKE_FAULTS", str(faults))
    c = cluster(n, driver="fake", listen=False)
    form(c)
    shared_pool(c)
    name = c.hosts[0].api("GET", "/v1/cluster")["manager"]
    manager = next(h for h in c.hosts if h.name == name)
    return c, faults, manager, [h for h in c.hosts if h is not manager]


def hosts_to_land_on_y(cluster, tmp_path, monkeypatch, vms):
    """3 fake-driver hosts (daemon fault points in the returned directory):
    the HA VMs vms run on one, the victim, and the manager's host is in
    maintenance, so that the victim's death lands them on the third, y.
    (cluster, faults, manager, victim, y)."""
    c, faults, manager, (victim, y) = fake_hosts(cluster, tmp_path, monkeypatch, 3)
    for vm in vms:
        create_on(victim, vm, blank=True, disk_size_bytes=16 << 20, ha=True)
        victim.task_ok("POST", f"/v1/vms/{vm}/start")
    manager.task_ok("POST", f"/v1/hosts/{manager.name}/maintenance", {"on": True})
    return c, faults, manager, victim, y


def test_handovers_and_fenced_hosts(cluster, tmp_path, monkeypatch):
    """A host dies with three HA VMs; the manager's host is in maintenance,
    so all three land on the third host, y. lost1: the manager's start call
    gets no answer (the daemon's fault point ha_handover@NAME, after the VM
    was registered there): the manager's next round hands it over again and
    it runs (it sat crashed and unmarked, started by nobody). fen1: its
    start fails on y, and its retry comes due (held there:
    ha_retry@fen1.hold) while y is fenced (RUN/fenced on the lease y holds):
    the retry waits (it was dropped, fen1 left stopped until y's next vireod
    start). far1: the start calls keep getting no answer until y is fenced:
    the manager places it (and fen1) again on its own host, back from
    maintenance, while y stays fenced (they waited for y's next vireod
    start). y, unfenced, forgets both."""
    c, faults, manager, victim, y = hosts_to_land_on_y(cluster, tmp_path, monkeypatch,
                                                       ("lost1", "fen1", "far1"))
    (faults / "ha_handover@lost1").write_text("1 ETIMEDOUT\n")
    (faults / "ha_handover@far1").write_text("999 ETIMEDOUT\n")
    (faults / "start@fen1").write_text("1 EIO\n")
    (faults / "ha_retry@fen1.hold").write_text("")
    c.kill_host(victim)

    def where(vm):
        v = next((v for v in y.api("GET", "/v1/vms")["vms"] if v["name"] == vm), {})
        return v.get("host"), v.get("state")

    wait_until(lambda: where("lost1") == (y.name, "running"), 90,
               what="lost1 running on y after its lost hand-over")
    assert "vm lost1: handed over to host %s again" % y.name in manager.log()
    wait_until(lambda: (faults / "ha_retry@fen1.held").exists(), 60, what="fen1's retry due")
    assert where("fen1") == (y.name, "stopped")
    fenced = write_fenced(y, 0)
    (faults / "ha_retry@fen1.hold").unlink()
    wait_until(lambda: "vm fen1: its HA start waits: this host is fenced" in y.log(), 30,
               what="fen1's retry waiting while y is fenced")
    assert where("far1") == (y.name, "crashed")
    # No place for fen1 while the manager's host is in maintenance. Its note
    # says so in the manager's task, not in fen1's document, which is y's:
    # y's next save of it is compared at the revision y knows (a note
    # written after y's reconcile read it refused every save until vireod
    # restarted; here y stays fenced without reconciling).
    unplaceable_then_next_round(manager, y, "fen1")
    y.api("PATCH", "/v1/vms/fen1", {"ha_priority": 5})
    manager.api("POST", f"/v1/hosts/{manager.name}/maintenance", {"on": False})
    (faults / "ha_handover@far1").unlink()
    for vm in ("far1", "fen1"):
        wait_until(lambda: where(vm) == (manager.name, "running"), 90,
                   what=f"{vm} placed again on the manager's host, y fenced")
    assert os.path.exists(fenced)
    assert "fenced itself before starting it: placed again" in manager.log()
    write_fenced(y, 1)
    wait_until(lambda: not os.path.exists(fenced), 60, what="y no longer fenced")
    for vm in ("far1", "fen1", "lost1"):
        assert hosts_of(manager, vm) == [manager.name if vm != "lost1" else y.name], vm
    assert y.vm("lost1")["state"] == "running"
    assert "vm fen1: its HA start is not tried again: this host" not in y.log()


def test_new_manager_takes_up_a_handover(cluster, tmp_path, monkeypatch):
    """A host dies with an HA VM, man1; the manager's host is in
    maintenance, so it lands on the third host, y, where the manager's
    start calls get no answer (ha_handover@man1). The manager's vireod then
    dies (its fence keeps its host online): y takes the role, finds man1
    waiting in its document (landed, unstarted) and hands it over: it runs
    (the list was the old manager's memory: man1 sat crashed, followed by
    nobody)."""
    c, faults, manager, victim, y = hosts_to_land_on_y(cluster, tmp_path, monkeypatch,
                                                       ("man1",))
    (faults / "ha_handover@man1").write_text("999 ETIMEDOUT\n")
    c.kill_host(victim)
    failed = f"vm man1: its hand-over to host {y.name} failed again"
    wait_until(lambda: failed in manager.log(), 90, what="man1's hand-over failing")
    manager.kill9()
    (faults / "ha_handover@man1").unlink()
    wait_until(lambda: y.api("GET", "/v1/cluster")["manager"] == y.name, 60,
               what="y the manager")
    wait_until(lambda: y.vm("man1")["state"] == "running", 90,
               what="man1 handed over by the new manager")
    assert "ha: vm man1 waits unstarted on host" in y.log()


def test_note_lands_not_on_a_host_back_online(cluster, tmp_path, monkeypatch):
    """The victim's live record is deleted (etcdctl), the host itself alive:
    the manager takes it for down and has no place for its HA VM un1 (both
    other hosts in maintenance). Its note ("unplaceable") is held
    (ha_note@un1.hold) until the victim's record is back, then let go: it
    is refused (the write compares the record still absent, as the manager
    judged it), and the victim's next save of un1 works. Before, the note
    landed in un1's document on a host back online, which knew it at the
    revision before: that save got 409 (a stale revision), every save of
    un1 until its vireod restarted."""
    c, faults, manager, victim, y = hosts_to_land_on_y(cluster, tmp_path, monkeypatch,
                                                       ("un1",))
    y.task_ok("POST", f"/v1/hosts/{y.name}/maintenance", {"on": True})
    (faults / "ha_note@un1.hold").write_text("")
    key = host_record_key(manager, victim)
    etcdctl(manager, "del", key)
    wait_until(lambda: (faults / "ha_note@un1.held").exists(), 60, what="un1's note held")
    wait_until(lambda: key in etcd_keys(manager, "cluster/hosts/"), 60,
               what="the victim's record back")
    (faults / "ha_note@un1.hold").unlink()
    vm_key = "vireo/h/%s/vms/%s" % (key.rsplit("/", 1)[1], victim.vm("un1")["id"])
    wait_until(lambda: any("ha: cannot note on VM un1 that it is unplaceable" in line
                           for line in manager.log().splitlines())
               or "unplaceable" in etcdctl(manager, "get", vm_key), 60,
               what="un1's note written or refused")
    status, doc = victim.request("PATCH", "/v1/vms/un1", {"ha_priority": 5})[:2]
    assert status == 200, doc
    assert victim.vm("un1")["ha_priority"] == 5
    assert "its host is back online" in manager.log()


def test_move_off_a_fenced_host_too_late(cluster, tmp_path, monkeypatch):
    """A host dies with an HA VM, rac1; the manager's host is in
    maintenance, so it lands on y, where the manager's start calls get no
    answer (ha_handover@rac1). y fences itself (RUN/fenced): the manager
    places rac1 again, on its own host back from maintenance, and its move
    off y is held (ha_move@rac1.hold) while y's fenced state ends (y
    reconciles: rac1 is still its own). Let go, the move is refused (it
    compares y's record as it was when it said fenced; y rewrote it), and
    rac1 is handed over to y again: it runs there, and one host has it.
    Before, the move committed: rac1 ran on the manager's host and stayed
    in y's memory too (its saves failing) until y's vireod restarted."""
    manager, y, faults, fenced = rac1_move_off_fenced_y_held(cluster, tmp_path, monkeypatch)
    write_fenced(y, 1)
    wait_until(lambda: not os.path.exists(fenced), 60, what="y no longer fenced")
    (faults / "ha_move@rac1.hold").unlink()
    wait_until(lambda: one_host_has(manager, y, "rac1"), 90,
               what="rac1 running, y's memory agreeing")
    assert local_state(y, "rac1") == "running"
    assert "rewrote its record during the switch" in manager.log()


def test_move_off_a_fenced_host_after_its_reconcile(cluster, tmp_path, monkeypatch):
    """The same, y's end of the fenced state held after its reconcile
    (fenced_reconciled.hold), before its record says online: the move,
    let go then, commits (y's record still the fenced one) and rac1 runs
    on the manager's host. y, let go, reads its VMs' documents once more
    after its record is out, and forgets rac1 (it stayed in y's memory, its
    saves failing, until y's vireod restarted)."""
    manager, y, faults, fenced = rac1_move_off_fenced_y_held(cluster, tmp_path, monkeypatch)
    (faults / "fenced_reconciled.hold").write_text("")
    write_fenced(y, 1)
    wait_until(lambda: (faults / "fenced_reconciled.held").exists(), 60,
               what="y's end of the fenced state held after its reconcile")
    (faults / "ha_move@rac1.hold").unlink()
    wait_until(lambda: local_state(manager, "rac1") == "running", 90,
               what="rac1 running on the manager's host")
    (faults / "fenced_reconciled.hold").unlink()
    wait_until(lambda: not os.path.exists(fenced), 60, what="y no longer fenced")
    wait_until(lambda: one_host_has(manager, y, "rac1"), 60, what="y forgetting rac1")
    assert local_state(manager, "rac1") == "running"


def rac1_move_off_fenced_y_held(cluster, tmp_path, monkeypatch):
    """rac1 landed on y, its hand-over failing; y fenced (RUN/fenced) and
    the manager's move of rac1 off y held (ha_move@rac1.hold): (manager, y,
    faults, y's RUN/fenced). rac1's hand-overs work again."""
    c, faults, manager, victim, y = hosts_to_land_on_y(cluster, tmp_path, monkeypatch,
                                                       ("rac1",))
    (faults / "ha_handover@rac1").write_text("999 ETIMEDOUT\n")
    c.kill_host(victim)
    wait_until(lambda: f"vm rac1: its hand-over to host {y.name} failed again" in manager.log(),
               90, what="rac1's hand-over failing")
    (faults / "ha_move@rac1.hold").write_text("")
    manager.api("POST", f"/v1/hosts/{manager.name}/maintenance", {"on": False})
    fenced = write_fenced(y, 0)
    wait_until(lambda: (faults / "ha_move@rac1.held").exists(), 60,
               what="rac1's move off fenced y held")
    (faults / "ha_handover@rac1").unlink()
    return manager, y, faults, fenced


def one_host_has(manager, y, vm):
    """Whether vm runs (as the manager sees it) and y has it in memory only
    when it is y's."""
    doc = manager.request("GET", f"/v1/vms/{vm}")[1]
    on_y = local_state(y, vm)
    return doc.get("state") == "running" and (on_y is not None) == (doc["host"] == y.name)


def host_record_key(via, host):
    """The etcd key of host's live record (cluster/hosts/ID), read via via."""
    lines = etcdctl(via, "get", "--prefix", "vireo/cluster/hosts/").splitlines()
    return next(k for k, v in zip(lines[::2], lines[1::2])
                if json.loads(v).get("name") == host.name)


def unplaceable_then_next_round(manager, fenced, vm):
    """Waits for the manager's note that vm of the fenced host has no place,
    then for its next look at vm (that note's round is over)."""
    said = "): unplaceable: "
    wait_until(lambda: any(f"vm {vm} (host {fenced.name} " in line and said in line
                           for line in manager.log().splitlines()), 60,
               what=f"{vm} unplaceable, its host fenced")
    looked = f"vm {vm}: its host {fenced.name} fenced itself before starting it"
    n = manager.log().count(looked)
    wait_until(lambda: manager.log().count(looked) > n, 60,
               what=f"the manager's next look at {vm}")


def write_fenced(host, lease_delta):
    """RUN/fenced as the fence writes it, killing nothing: on the lease the
    host holds (lease_delta 0) its fenced state lasts; on another
    (lease_delta 1) it ends at the host's next record refresh (10 s)."""
    lease = fence_state(host)["lease"] + lease_delta
    path = os.path.join(host.run_dir, "fenced")
    with open(path + ".tmp", "w") as f:
        json.dump({"at": int(time.time()), "at_monotonic_ms": int(time.monotonic() * 1000),
                   "why": "test", "lease": lease, "vms": []}, f)
    os.rename(path + ".tmp", path)
    return path


def test_unanswering_host_holds_up_no_recovery(cluster, tmp_path, monkeypatch):
    """Four fake-driver hosts: v's HA VMs (ho1..ho4) land on y (their
    ha_group, together, lives there), where the manager's start calls get
    no answer (ha_handover@NAME): four hand-overs followed. y's vireod is
    then stopped (SIGSTOP; its fence keeps y online): each call to it waits
    out the peer timeout (the TLS handshake's, about 4 s; up to 15 s when
    the connection is taken). Right after the first such failure, w dies
    (its vireod and fence killed; the etcds stay for the quorum) with two
    HA VMs whose group lives on the manager's host: they run there before
    a second call to y fails. Before, the round made the due hand-overs
    one after another before it looked at w: up1 and up2 waited for ho2's,
    ho3's and ho4's calls. y continued, ho1..ho4 are handed over."""
    c, faults, manager, (v, y, w) = fake_hosts(cluster, tmp_path, monkeypatch, 4)
    for group, home in (("gy", y), ("gm", manager)):
        manager.api("POST", "/v1/groups", {"name": group, "policy": "together"}, expect=201)
        create_on(home, f"anchor-{group}", blank=True, disk_size_bytes=16 << 20, group=group)
    for host, group, vms in ((v, "gy", ("ho1", "ho2", "ho3", "ho4")), (w, "gm", ("up1", "up2"))):
        for vm in vms:
            create_on(host, vm, blank=True, disk_size_bytes=16 << 20, ha=True, ha_group=group)
            host.task_ok("POST", f"/v1/vms/{vm}/start")
    for vm in ("ho1", "ho2", "ho3", "ho4"):
        (faults / f"ha_handover@{vm}").write_text("999 ETIMEDOUT\n")
    power_off_keeping_etcd(v)
    for vm in ("ho1", "ho2", "ho3", "ho4"):
        wait_until(lambda: f"vm {vm}: its hand-over to host {y.name} failed again"
                   in manager.log(), 90, what=f"{vm}'s hand-over to y failing")
    unanswered = f"to host {y.name} failed again: host {y.name} did not answer:"
    os.kill(y.proc.pid, signal.SIGSTOP)
    try:
        for vm in ("ho1", "ho2", "ho3", "ho4"):
            (faults / f"ha_handover@{vm}").unlink()
        wait_until(lambda: unanswered in manager.log(), 120, what="a call to y unanswered")
        mark = len(manager.log())
        power_off_keeping_etcd(w)
        for vm in ("up1", "up2"):
            wait_until(lambda: local_state(manager, vm) == "running", 120,
                       what=f"{vm} restarted on the manager's host")
        since = manager.log()[mark:]
        assert since.count(unanswered) <= 1, since
    finally:
        os.kill(y.proc.pid, signal.SIGCONT)
    for vm in ("ho1", "ho2", "ho3", "ho4"):
        wait_until(lambda: y.vm(vm)["state"] == "running", 120,
                   what=f"{vm} handed over to y once it answers")


def local_state(host, vm):
    """The state of vm when host has it, else None."""
    status, doc = host.request("GET", f"/v1/vms/{vm}")[:2]
    return doc.get("state") if status == 200 and doc.get("host") == host.name else None


def power_off_keeping_etcd(host):
    """The host's vireod and fence killed (SIGKILL, by PID): it goes
    offline when its lease ends; its etcd member stays, for the quorum."""
    host.kill9()
    host.kill_fence()


def test_chosen_host_dies_during_its_handover(cluster, tmp_path, monkeypatch):
    """A host dies with an HA VM, ov1, which lands on y; its hand-over to y
    is held after ov1 was registered there (ha_handover@ov1.hold). y then
    dies too (vireod and fence killed): the manager moves ov1 on to its own
    host, back from maintenance, while the worker's hand-over to y is still
    under way. Let go, that hand-over fails (y is gone) and is put back; it
    must not take the place of the newer one to the manager's host. Before,
    it did: the manager followed ov1 on y, found it gone from there and
    dropped it, and ov1 sat unstarted on the manager's host."""
    c, faults, manager, victim, y = hosts_to_land_on_y(cluster, tmp_path, monkeypatch,
                                                       ("ov1",))
    (faults / "ha_handover@ov1.hold").write_text("")
    c.kill_host(victim)
    wait_until(lambda: (faults / "ha_handover@ov1.held").exists(), 90,
               what="ov1's hand-over to y held")
    vm_id = y.vm("ov1")["id"]
    manager.api("POST", f"/v1/hosts/{manager.name}/maintenance", {"on": False})
    power_off_keeping_etcd(y)
    on_manager = "vireo/h/%s/vms/%s" % (host_record_key(manager, manager).rsplit("/", 1)[1],
                                        vm_id)
    wait_until(lambda: on_manager in etcd_keys(manager, "h/"), 90,
               what="ov1 moved on to the manager's host")
    (faults / "ha_handover@ov1.hold").unlink()
    wait_until(lambda: local_state(manager, "ov1") == "running", 90,
               what="ov1 running on the manager's host")


def test_start_that_hangs_holds_up_no_handover(cluster, tmp_path, monkeypatch):
    """A host dies with two HA VMs, which land on y; sl1 (the higher
    priority, handed over first) has its start held on y (start@sl1.hold):
    its start task does not end. sl2, moved while sl1 was being handed
    over, runs on y all the same. Before, y's worker took sl2 only after it
    had waited for sl1's start task: sl2 waited until the manager gave sl1
    up ("did not end within 60 s")."""
    c, faults, manager, victim, y = hosts_to_land_on_y(cluster, tmp_path, monkeypatch,
                                                       ("sl1", "sl2"))
    status, doc = victim.request("PATCH", "/v1/vms/sl1", {"ha_priority": 5})[:2]
    assert status == 200, doc
    (faults / "start@sl1.hold").write_text("")
    c.kill_host(victim)
    wait_until(lambda: (faults / "start@sl1.held").exists(), 90, what="sl1's start held on y")
    wait_until(lambda: local_state(y, "sl2") == "running", 120, what="sl2 running on y")
    assert "did not end within" not in manager.log()
    (faults / "start@sl1.hold").unlink()
    wait_until(lambda: local_state(y, "sl1") == "running", 90, what="sl1 running on y")


def test_hung_start_call_holds_up_no_other_handover(cluster, tmp_path, monkeypatch):
    """A host dies with two HA VMs, which land on y; y does not answer the
    manager's start call of hc1 (the higher priority, handed over first:
    held on y at ha_start_refused@hc1.hold, its answer never sent). hc2,
    moved meanwhile, is handed over to y by another of y's workers and
    runs before the manager gives hc1's call up. Before, y's one worker
    made hc2's calls only after hc1's had waited out the peer timeout (15
    s), and then not at all for the 10 s y rested as unanswering: hc2
    waited 25 s or more. Let go, hc1 runs on y too."""
    c, faults, manager, victim, y = hosts_to_land_on_y(cluster, tmp_path, monkeypatch,
                                                       ("hc1", "hc2"))
    status, doc = victim.request("PATCH", "/v1/vms/hc1", {"ha_priority": 5})[:2]
    assert status == 200, doc
    hold = faults / "ha_start_refused@hc1.hold"
    hold.write_text("")
    try:
        c.kill_host(victim)
        wait_until(lambda: (faults / "ha_start_refused@hc1.held").exists(), 90,
                   what="y's answer to hc1's start call held")
        gave_up = f"vm hc1 moved to host {y.name} (host {victim.name} offline) but not started"
        wait_until(lambda: local_state(y, "hc2") == "running" or gave_up in manager.log(),
                   120, what="hc2 running on y, or hc1's call given up")
        assert gave_up not in manager.log(), "hc2 waited for hc1's unanswered call"
        assert local_state(y, "hc2") == "running"
    finally:
        hold.unlink()
    wait_until(lambda: local_state(y, "hc1") == "running", 120, what="hc1 running on y")
    took = [m for m in ha_messages([manager]) if "restarted on" in m]
    print("hand-overs:", took)


def test_manager_stop_notes_no_start_failure(cluster, tmp_path, monkeypatch):
    """A host dies with an HA VM, st1, which lands on y, where its start is
    held (start@st1.hold); the manager's vireod stops meanwhile. Its
    hand-over worker stops following st1's start without a call or a note:
    y follows that start itself, and st1 runs there once let go. Before,
    the worker asked y once more about each start it followed (each call
    could wait out the peer timeout, holding up the stop) and noted each
    as failed, "its start on host y did not end within 60 s", seconds
    after it began."""
    c, faults, manager, victim, y = hosts_to_land_on_y(cluster, tmp_path, monkeypatch,
                                                       ("st1",))
    hold = faults / "start@st1.hold"
    hold.write_text("")
    try:
        c.kill_host(victim)
        wait_until(lambda: (faults / "start@st1.held").exists(), 90, what="st1's start held on y")
        manager.stop()
        assert "vireod stopped" in manager.log()  # its stop ran through
        assert "did not end within" not in manager.log()
    finally:
        hold.unlink()
    wait_until(lambda: local_state(y, "st1") == "running", 90, what="st1 running on y")
