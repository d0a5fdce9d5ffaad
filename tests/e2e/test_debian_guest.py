"""System test of vireo's Debian guest image (guest/build-debian-image.sh:
systemd, cloud-init, qemu-guest-agent, openssh) under TCG, configured by
cloud-init from the NoCloud seed vireod attaches: a VM created with
--ci-user, --ci-ssh-key and --ci-network dhcp on a vireo network gets its
hostname from cloud-init, the user logs in over SSH with the key from the
test's namespace, `vm show` lists the IP the guest agent reports, `vm exec`
runs `uname -r`.

Then what a real guest (systemd's qemu-ga, ext4 root) does with vireo's
quiesced snapshot and backup: a memory snapshot and a backup each freeze the
guest's file systems through the agent (`quiesced: true`) with a file
written, never synced, just before; the files are changed; reverting the
snapshot brings back the file as written, the guest running on (agent and
SSH answer); then the cloud-init settings change (hostname, a second SSH
key) and the running guest's seed drive has the new seed at once; a reboot
from inside the guest (systemctl reboot, through the agent) resets it in the
same QEMU, the agent answers from the new boot, and cloud-init applied the
new hostname and instance-id (the second key logs in); `vm stop` goes
through the agent, the backup is restored over the VM, and its disk, read
on the host without a boot (qemu-img convert, debugfs), has the backup's
files and the old hostname and instance-id. Two boots (the second a reboot
inside the same QEMU).

The image is built by `make debian-image` (or `make debian-image-bg`, which
`make check` starts first); this test waits (bounded) for that build's lock,
and fails when there is no image, or only a stale one (VIREO_TEST_DEBIAN_IMAGE,
default BUILD/guest/debian): never skipped, so a check whose image build
failed fails, quoting the end of the build's log. It prints
the times (boot to SSH login, snapshot, backup, revert, the reboot,
restore). Beside it, tests of seconds without a VM: the image's kernel
command line and cloud-init module lists (read from the script), and what
a failed SSH wait says."""

import hashlib
import json
import os
import subprocess
import time

import pytest
import yaml

from vireo_harness import BUILD, Daemon, ext4_files, wait_until

IMAGE = os.environ.get("VIREO_TEST_DEBIAN_IMAGE", os.path.join(BUILD, "guest", "debian"))
# The image's scripts (guest/ in this tree).
GUEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "guest")
SCRIPT = os.path.join(GUEST, "build-debian-image.sh")
# How long to wait for a build of the image still running beside the tests.
BUILD_WAIT_S = int(os.environ.get("VIREO_DEBIAN_BUILD_WAIT", "1800"))
# The bound of each wait on the guest's boot, SSH or cloud-init: a systemd
# guest under TCG beside make check's other runs gets a fraction of a core
# (the agent's address after 271 s, cloud-init after a reboot not done in
# 300 s, at load ~25; at load 28-67 the agent's address after 532 s, back
# after the reboot after 592 s).
GUEST_WAIT_S = 900
# A command run through the agent that waits in the guest: at most the exec
# API's 600 s.
EXEC_WAIT_S = 600


def image_current():
    """Whether IMAGE was built by the scripts as they are (their hash in its
    image.json, as the scripts and the Makefile check it)."""
    h = hashlib.sha256()
    for name in ("build-debian-image.sh", "build-image.sh"):
        with open(os.path.join(GUEST, name), "rb") as f:
            h.update(f.read())
    try:
        with open(os.path.join(IMAGE, "image.json")) as f:
            return f'"script":"{h.hexdigest()}"' in f.read()
    except OSError:
        return False


def image_ready():
    """Whether IMAGE is there and current, once a build holding its lock
    ended (bounded). A stale image is not ready: its rebuild failed (no
    network, a debootstrap error) or never ran, and the test must fail
    then, not pass on the image older scripts built."""
    lock = os.path.join(os.path.dirname(os.path.abspath(IMAGE)),
                        "." + os.path.basename(os.path.abspath(IMAGE)) + ".lock")
    if os.path.exists(lock) and not image_current():
        # A build (a first one, or a rebuild of a stale image, which swaps
        # the directory away under a VM) holds the lock: wait for it to end
        # (flock, bounded).
        subprocess.run(["flock", "-w", str(BUILD_WAIT_S), lock, "true"], check=False,
                       timeout=BUILD_WAIT_S + 30)
    return image_current()


def image_not_ready():
    """Why there is no image to test, with the end of make check's build log."""
    what = "stale (built by other guest scripts; not rebuilt)" if os.path.exists(
        os.path.join(IMAGE, "image.json")) else "missing"
    why = (f"the Debian guest image at {IMAGE} is {what}: guest/build-debian-image.sh, "
           f"`make debian-image`")
    try:
        with open(IMAGE + ".log", errors="replace") as f:
            tail = f.read().splitlines()[-15:]
        return why + f"; the end of {IMAGE}.log (make check's build):\n" + "\n".join(tail)
    except OSError:
        return why


@pytest.fixture(scope="module")
def debian_daemon():
    if not image_ready():
        pytest.fail(image_not_ready())

    def link(state_dir):
        os.symlink(os.path.abspath(IMAGE), os.path.join(state_dir, "images", "debian"))

    d = Daemon(before_start=link)
    try:
        yield d
    finally:
        d.cleanup()


def test_a_missing_or_stale_image_is_not_ready(tmp_path, monkeypatch):
    """A check whose image build failed fails: with no image, and with a
    stale one (a rebuild that failed leaves the old image in place)."""
    image = tmp_path / "debian"
    monkeypatch.setitem(globals(), "IMAGE", str(image))  # image_ready() reads it
    assert not image_ready() and "is missing" in image_not_ready()
    image.mkdir()
    (image / "image.json").write_text('{"cloud_init":true,"script":"' + "0" * 64 + '"}')
    (tmp_path / "debian.log").write_text("E: debootstrap failed\n")
    assert not image_ready()
    assert "is stale" in image_not_ready() and "E: debootstrap failed" in image_not_ready()


def test_the_image_keeps_debians_kernel_hardening():
    """The image is for users too (README.md): its kernel command line
    takes none of the default test image's cuts that weaken the guest
    (speculation mitigations, read-only kernel data, zeroed pages)."""
    p = subprocess.run(["bash", "-c", 'source "$1" && echo "$DEBIAN_CMDLINE"', "bash", SCRIPT],
                       capture_output=True, text=True, check=True, timeout=30)
    cmdline = p.stdout.split()
    assert "console=ttyS0" in cmdline and "hpet=disable" in cmdline, cmdline
    assert not {"mitigations=off", "rodata=off", "init_on_alloc=0"} & set(cmdline), cmdline


def test_the_image_runs_the_cloud_init_modules_a_users_user_data_needs():
    """The image's cloud-init module lists (cloud.cfg.d/90-vireo.cfg, in the
    script) leave out only what this image cannot use: the modules behind
    a user's write_files, runcmd, packages, users, SSH keys, growpart and
    the agents cloud-init installs itself (lxd, puppet, chef, salt) run."""
    with open(SCRIPT) as f:
        text = f.read()
    start = text.index("90-vireo.cfg\" <<'CFG'\n")
    cfg = yaml.safe_load(text[text.index("\n", start) + 1:text.index("\nCFG\n", start)])
    modules = {m.replace("_", "-") for stage in ("init", "config", "final")
               for m in cfg[f"cloud_{stage}_modules"]}
    needed = {"write-files", "write-files-deferred", "runcmd", "bootcmd",
              "package-update-upgrade-install", "users-groups", "ssh", "set-passwords",
              "growpart", "resizefs", "mounts", "disk-setup", "set-hostname", "ca-certs",
              "apt-configure", "apt-pipelining", "ntp", "timezone", "scripts-user",
              "scripts-per-instance", "phone-home", "power-state-change",
              "lxd", "puppet", "chef", "salt-minion"}
    assert needed <= modules, sorted(needed - modules)


class FakeSshDaemon:
    """Stands in for the Daemon in ssh(): each session ends as the next of
    outcomes says (an exception is raised)."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)

    def ns(self, *cmd, check=True, timeout=30):
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_an_ssh_login_that_never_works_says_how_it_failed(monkeypatch):
    """A login that keeps failing fails the wait, and the error says how
    the last attempt ended: a hang (each session past its bound) or sshd's
    refusal, not only that the wait timed out."""
    monkeypatch.setitem(globals(), "GUEST_WAIT_S", 1)  # two attempts, 2 s apart
    hang = subprocess.TimeoutExpired(["ssh"], SSH_WAIT_S)
    with pytest.raises(TimeoutError, match=f"did not end within {SSH_WAIT_S} s"):
        ssh_login(FakeSshDaemon(hang), "id", "10.0.0.2", "a login")
    refused = subprocess.CompletedProcess(["ssh"], 255, "", "tester@10.0.0.2: Permission denied")
    with pytest.raises(TimeoutError, match="exit 255: .*Permission denied"):
        ssh_login(FakeSshDaemon(hang, refused), "id", "10.0.0.2", "a login")
    ok = subprocess.CompletedProcess(["ssh"], 0, "deb1\n", "")
    assert ssh_login(FakeSshDaemon(hang, ok), "id", "10.0.0.2", "a login") == "deb1"


# Waits until cloud-init's last stage of this boot ended, then prints its
# result (/run is a tmpfs: a reboot starts without one). What `cloud-init
# status --wait` reads, without starting cloud-init's Python in the guest
# (seconds of CPU under TCG).
CLOUD_INIT_RESULT = ("while [ ! -e /run/cloud-init/result.json ]; do sleep 1; done; "
                     "cat /run/cloud-init/result.json")


def finished_cleanly(result):
    """Whether CLOUD_INIT_RESULT's output says cloud-init ran without errors."""
    try:
        return json.loads(result)["v1"]["errors"] == []
    except (ValueError, KeyError, TypeError):
        return False


# The bound of one SSH session: a login to a guest that gets a fraction of a
# core under TCG (make check's other runs beside it) took over 30 s.
SSH_WAIT_S = 120


def ssh(daemon, key, ip, *command, timeout=SSH_WAIT_S):
    return daemon.ns("ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                     "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "LogLevel=ERROR", f"tester@{ip}", *command, check=False,
                     timeout=timeout)


def ssh_login(d, key, ip, what):
    """Waits (GUEST_WAIT_S) for an SSH login with key to work; the guest's
    hostname as it sees it. An attempt that fails (sshd not up, the user or
    key not made yet) or does not end within its bound (SSH_WAIT_S, under
    load) counts as not yet; when the wait ends without a login, the error
    says how the last attempt ended (a refusal, a hang)."""
    last = ["no attempt ended"]

    def hostname():
        try:
            p = ssh(d, key, ip, "hostname")
        except subprocess.TimeoutExpired:
            last[0] = f"a session that did not end within {SSH_WAIT_S} s"
            return None
        if p.returncode == 0:
            return p.stdout.strip()
        last[0] = f"exit {p.returncode}: {p.stderr.strip()}"
        return None
    try:
        return wait_until(hostname, GUEST_WAIT_S, interval=2, what=what)
    except TimeoutError as e:
        raise TimeoutError(f"{e}; the last SSH attempt: {last[0]}") from None


def test_debian_cloud_init_ssh_agent_snapshot_backup(debian_daemon, tmp_path):
    d = debian_daemon
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True,
                   timeout=30)
    d.cli("vm", "create", "deb1", "--image", "debian", "--memory", "1G", "--ci-user", "tester",
          "--ci-ssh-key", f"{key}.pub", "--ci-network", "dhcp")
    t0 = time.monotonic()
    d.cli("vm", "start", "deb1")
    vm = d.vm("deb1")
    if vm.get("pid"):
        d.qemu_pids.add(vm["pid"])

    # The guest agent reports the address DHCP gave the NIC.
    def agent_ip():
        g = d.vm("deb1").get("guest") or {}
        ips = [ip for ip in g.get("ips", []) if "." in ip and not ip.startswith("127.")]
        return ips[0] if g.get("agent") and ips else None
    ip = wait_until(agent_ip, GUEST_WAIT_S, interval=1,
                    what="deb1's guest agent to report an IPv4 address")
    t_agent = time.monotonic() - t0
    assert ip == d.nic_ip("deb1"), (ip, d.vm("deb1")["nics"])
    shown = d.cli("vm", "show", "deb1").stdout
    assert "guest agent:" in shown and ip in shown, shown

    # SSH as the user cloud-init made, with the key; cloud-init set the hostname.
    host = ssh_login(d, key, ip, "an SSH login to deb1 as tester")
    t_login = time.monotonic() - t0
    assert host == "deb1"
    # The uid on a line of its own, last (a failed sudo prints a word there,
    # not a line short that would make the result unreadable).
    p = ssh(d, key, ip, f"{CLOUD_INIT_RESULT}; echo; sudo -n id -u || echo 'no sudo'",
            timeout=GUEST_WAIT_S)
    t_ci = time.monotonic() - t0
    result, _, uid = p.stdout.rstrip("\n").rpartition("\n")
    if p.returncode != 0 or not finished_cleanly(result):
        try:
            why = ssh(d, key, ip, "sudo -n grep -E 'WARNING|ERROR|Traceback' "
                      "/var/log/cloud-init.log | tail -n 20").stdout
        except subprocess.TimeoutExpired as e:
            why = f"(no log: {e})"
        raise AssertionError(f"cloud-init did not finish cleanly: exit {p.returncode}\n"
                             f"{p.stdout}\n{p.stderr}\n{why}")
    assert uid == "0", p  # the user has sudo
    print(f"\nDebian guest under TCG: agent IP after {t_agent:.1f} s, SSH login after "
          f"{t_login:.1f} s, cloud-init done after {t_ci:.1f} s")

    # exec through the agent: the image's kernel.
    kernel = json.load(open(os.path.join(IMAGE, "image.json")))["kernel_version"]
    p = d.cli("vm", "exec", "deb1", "--", "uname", "-r")
    assert p.stdout == kernel + "\n", p

    backed_up = snapshot_backup_revert(d, key, ip)
    restore_and_new_cloud_init_settings(d, key, tmp_path, *backed_up)


def timed_task(d, method, path, body, timeout=600):
    """Runs an API task to success; its seconds and result."""
    t0 = time.monotonic()
    doc = d.api(method, path, body, expect=202)
    task = d.wait_task(doc["task"], timeout=timeout)
    assert task["state"] == "succeeded", task
    return time.monotonic() - t0, task


def guest_read(d, *paths):
    """The files' contents as the guest reads them now (`vm exec` through the
    agent), None for a missing one."""
    res = d.api("POST", "/v1/vms/deb1/exec", {"command": [
        "sh", "-c", 'for f; do if [ -e "$f" ]; then cat "$f"; else echo MISSING; fi; done',
        "sh", *paths]})
    assert res["exit_code"] == 0, res
    return [None if line == "MISSING" else line for line in res["stdout"].splitlines()]


def snapshot_backup_revert(d, key, ip):
    """A memory snapshot and a backup of the running guest, each quiesced by
    its agent with a file written just before; the files changed; the
    snapshot reverted: the guest runs on with its file as written."""
    # Each file is written just before the instant and NOT synced: only the
    # freeze (FIFREEZE syncs the file system) puts it on the disk in time
    # for a disk-only copy (ext4's delayed allocation leaves a new file's
    # data in the page cache for up to 30 s, dirty_expire_centisecs). The
    # memory snapshot would hold it in the page cache anyway; the backup
    # (disks only) proves the flush.
    before, backed_up = os.urandom(8).hex(), os.urandom(8).hex()
    snap_file, backup_file = "/home/tester/before-snapshot", "/var/tmp/before-backup"
    p = ssh(d, key, ip, f"echo {before} > {snap_file}")  # as the user, over SSH
    assert p.returncode == 0, p
    t_snap, _ = timed_task(d, "POST", "/v1/vms/deb1/snapshots", {"name": "s1", "memory": True})
    snap = d.api("GET", "/v1/vms/deb1/snapshots/s1")
    assert snap["quiesced"] is True and snap["quiesce_reason"] is None, snap

    res = d.api("POST", "/v1/vms/deb1/exec", {"command": [  # as root, through the agent
        "sh", "-c", f"echo {backed_up} > {backup_file}"]})
    assert res["exit_code"] == 0, res
    t_backup, task = timed_task(d, "POST", "/v1/vms/deb1/backups", {})
    b = d.api("GET", f"/v1/backups/{task['result']['backup']}")
    assert b["quiesced"] is True and b["quiesce_reason"] is None, b

    # Thawed: the guest writes (and syncs) again; both files change.
    res = d.api("POST", "/v1/vms/deb1/exec", {"command": [
        "sh", "-c", f"echo changed > {snap_file} && echo changed > {backup_file} && sync"],
        "timeout_s": 60})
    assert res["exit_code"] == 0, res
    assert guest_read(d, snap_file, backup_file) == ["changed", "changed"]

    t_revert, _ = timed_task(d, "POST", "/v1/vms/deb1/snapshots/s1/revert", {"force": True})
    # The instant of the snapshot: the file as written, the backup's file
    # not yet there; the agent answers, the file systems are thawed (the
    # guest writes), SSH logs in.
    assert guest_read(d, snap_file, backup_file) == [before, None]
    res = d.api("POST", "/v1/vms/deb1/exec", {"command": [
        "sh", "-c", "echo thawed > /var/tmp/after-revert && sync && cat /var/tmp/after-revert"],
        "timeout_s": 60})
    assert res["stdout"] == "thawed\n", res
    assert ssh_login(d, key, ip, "an SSH login to deb1 after the revert") == "deb1"
    print(f"memory snapshot {t_snap:.1f} s, backup {t_backup:.1f} s, revert {t_revert:.1f} s")
    return b, {snap_file: before, backup_file: backed_up}


def agent_exec(d, script, timeout_s=30, rebooting=False):
    """sh -c script through the agent: (exit code, stdout). rebooting: None
    when the agent does not answer or the command died with the guest."""
    status, res = d.request("POST", "/v1/vms/deb1/exec",
                            {"command": ["sh", "-c", script], "timeout_s": timeout_s},
                            timeout=timeout_s + 30)
    if rebooting and status != 200:
        return None
    assert status == 200, (status, res)
    return res["exit_code"], res["stdout"]


def reboot_inside_applies_new_settings(d, new_id):
    """A reboot from inside the guest (systemctl reboot, run through the
    agent): the guest resets inside the same QEMU, vireo counts the reset
    and keeps the VM running, the agent answers again from the new boot,
    and cloud-init applied the settings in the seed drive (the new
    hostname and instance-id)."""
    vm = d.vm("deb1")
    pid, resets = vm["pid"], vm.get("resets", 0)
    resets_logged = d.log().count("deb1: reset (")
    boot_id = agent_exec(d, "cat /proc/sys/kernel/random/boot_id")[1].strip()
    t0 = time.monotonic()
    # Queued in systemd 2 s from now: the exec returns before the agent goes down.
    code, out = agent_exec(d, "systemd-run --on-active=2 systemctl reboot 2>&1")
    assert code == 0, out

    def new_boot():
        res = agent_exec(d, "cat /proc/sys/kernel/random/boot_id", rebooting=True)
        return res and res[0] == 0 and res[1].strip() not in ("", boot_id) and res[1].strip()
    wait_until(new_boot, GUEST_WAIT_S, interval=2,
               what="deb1's guest agent to answer after its reboot")
    t_agent = time.monotonic() - t0
    vm = d.vm("deb1")
    assert vm["state"] == "running" and vm["pid"] == pid, vm  # the same QEMU
    # Counted once: QEMU reports one reboot of the guest as two RESET
    # events, both guest-reset, ~40 ms apart (seen with the default image
    # too; the firmware, SeaBIOS, resets the machine once more after a warm
    # reset): vireo counts the resets within 1 s of a group's first as one.
    # (The new boot answered, so both came long since.)
    assert vm.get("resets", 0) == resets + 1 and vm.get("last_reset_at"), vm
    logged = d.log().count("deb1: reset (") - resets_logged
    res = agent_exec(d, f"{CLOUD_INIT_RESULT}; echo; hostname; cat /var/lib/cloud/data/instance-id",
                     timeout_s=EXEC_WAIT_S)
    *result, hostname, instance_id = res[1].rstrip("\n").split("\n")
    assert finished_cleanly("\n".join(result)), res
    assert [hostname, instance_id] == ["deb1-renamed", new_id], res
    print(f"reboot inside the guest: agent back after {t_agent:.1f} s, cloud-init done after "
          f"{time.monotonic() - t0:.1f} s; {logged} RESET events, counted as 1")


def restore_and_new_cloud_init_settings(d, key, tmp_path, b, files):
    """New cloud-init settings (hostname, a second key) applied by a reboot
    from inside; stop through the agent; the backup b restored over the VM:
    its disk has the backup's files (path: contents) and the settings of
    before the change."""
    key2 = tmp_path / "id2"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key2)], check=True,
                   timeout=30)
    keys = tmp_path / "keys.pub"
    keys.write_text(open(f"{key}.pub").read() + open(f"{key2}.pub").read())
    old_id = d.api("GET", "/v1/vms/deb1/cloud-init")["instance_id"]
    d.cli("vm", "cloud-init", "set", "deb1", "--ci-hostname", "deb1-renamed",
          "--ci-ssh-key", str(keys))
    new_id = d.api("GET", "/v1/vms/deb1/cloud-init")["instance_id"]
    assert new_id != old_id, new_id
    # The running guest's seed drive has the new seed already ...
    res = d.api("POST", "/v1/vms/deb1/exec", {"command": [
        "sh", "-c", "for dev in /dev/sr*; do mount -o ro $dev /mnt 2>/dev/null || continue; "
        "cat /mnt/meta-data; umount /mnt; done"], "timeout_s": 60})
    assert f'instance-id: "{new_id}"' in res["stdout"], res
    reboot_inside_applies_new_settings(d, new_id)
    # ... and the second key logs in over SSH after that reboot.
    ip = d.nic_ip("deb1")
    p = ssh(d, key2, ip, "hostname")
    assert p.returncode == 0 and p.stdout.strip() == "deb1-renamed", p
    assert ssh(d, key, ip, "true").returncode == 0  # the first key still logs in

    # stop goes through the agent. The agent gets half of the stop's
    # timeout to power the guest off (then ACPI): at the default 30 s, a
    # systemd guest under TCG beside make check's other runs was still
    # shutting down after 15 s, and ACPI's press finished it ("powered off
    # by ACPI"): the timeout given here is what this guest needs there.
    doc = d.api("POST", "/v1/vms/deb1/stop", {"timeout_s": 600}, expect=202)
    task = d.wait_task(doc["task"], timeout=660)
    assert task["state"] == "succeeded", task
    assert task["result"]["stopped"] == "shut down by the guest agent", task

    t_restore, _ = timed_task(d, "POST", f"/v1/backups/{b['id']}/restore", {})
    # The backup's instant, read from the restored disk without booting it
    # (the reboot above showed cloud-init applying new settings; a third
    # boot of the guest would show nothing more): the file written just
    # before the backup, never synced, is there, the snapshot's file as the
    # backup had it, and the hostname and instance-id of before the change.
    disk = d.api("GET", "/v1/vms/deb1/disks")["disks"][0]
    found = ext4_files(disk["path"], tmp_path, *files, "/etc/hostname",
                       "/var/lib/cloud/data/instance-id", fmt=disk["format"])
    assert [f and f.strip() for f in found] == [*files.values(), "deb1", old_id], found
    print(f"restore {t_restore:.1f} s")
