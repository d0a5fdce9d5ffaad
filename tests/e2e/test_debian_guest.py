"""System test of vireo's Debian guest image (guest/build-debian-image.sh:
systemd, cloud-init, qemu-guest-agent, openssh) under TCG, configured by
cloud-init from the NoCloud seed vireod attaches: a VM created with
--ci-user, --ci-ssh-key and --ci-network dhcp on a vireo network gets its
hostname from cloud-init, the user logs in over SSH with the key from the
test's namespace, `vm show` lists the IP the guest agent reports, `vm exec`
runs `uname -r`, and `vm stop` goes through the agent. One VM boot.

The image is built by `make check` in the background beside the compiles;
this test waits (bounded) for that build's lock, and is skipped when there
is no image (VIREO_TEST_DEBIAN_IMAGE, default BUILD/guest/debian). It prints
the boot times (to SSH login, to cloud-init done)."""

import hashlib
import json
import os
import subprocess
import time

import pytest

from vireo_harness import BUILD, Daemon, wait_until

IMAGE = os.environ.get("VIREO_TEST_DEBIAN_IMAGE", os.path.join(BUILD, "guest", "debian"))
# How long to wait for a build of the image still running beside the tests.
BUILD_WAIT_S = int(os.environ.get("VIREO_DEBIAN_BUILD_WAIT", "1800"))


def image_current():
    """Whether IMAGE was built by the scripts as they are (their hash in its
    image.json, as the scripts and the Makefile check it)."""
    guest = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "guest")
    h = hashlib.sha256()
    for name in ("build-debian-image.sh", "build-image.sh"):
        with open(os.path.join(guest, name), "rb") as f:
            h.update(f.read())
    try:
        with open(os.path.join(IMAGE, "image.json")) as f:
            return f'"script":"{h.hexdigest()}"' in f.read()
    except OSError:
        return False


def image_ready():
    lock = os.path.join(os.path.dirname(os.path.abspath(IMAGE)),
                        "." + os.path.basename(os.path.abspath(IMAGE)) + ".lock")
    if os.path.exists(lock) and not image_current():
        # A build (a first one, or a rebuild of a stale image, which swaps
        # the directory away under a VM) holds the lock: wait for it to end
        # (flock, bounded).
        subprocess.run(["flock", "-w", str(BUILD_WAIT_S), lock, "true"], check=False,
                       timeout=BUILD_WAIT_S + 30)
    return os.path.exists(os.path.join(IMAGE, "image.json"))


@pytest.fixture(scope="module")
def debian_daemon():
    if not image_ready():
        pytest.skip(f"no Debian guest image at {IMAGE} (guest/build-debian-image.sh; see "
                    f"{IMAGE}.log when make check built it)")

    def link(state_dir):
        os.symlink(os.path.abspath(IMAGE), os.path.join(state_dir, "images", "debian"))

    d = Daemon(before_start=link)
    try:
        yield d
    finally:
        d.cleanup()


def ssh(daemon, key, ip, *command, timeout=30):
    return daemon.ns("ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                     "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     "-o", "LogLevel=ERROR", f"tester@{ip}", *command, check=False,
                     timeout=timeout)


def test_debian_cloud_init_ssh_agent(debian_daemon, tmp_path):
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
    ip = wait_until(agent_ip, 300, interval=1, what="deb1's guest agent to report an IPv4 address")
    t_agent = time.monotonic() - t0
    assert ip == d.nic_ip("deb1"), (ip, d.vm("deb1")["nics"])
    shown = d.cli("vm", "show", "deb1").stdout
    assert "guest agent:" in shown and ip in shown, shown

    # SSH as the user cloud-init made, with the key; cloud-init set the hostname.
    def login():
        p = ssh(d, key, ip, "hostname")
        return p.stdout.strip() if p.returncode == 0 else None
    host = wait_until(login, 300, interval=2, what="an SSH login to deb1 as tester")
    t_login = time.monotonic() - t0
    assert host == "deb1"
    p = ssh(d, key, ip, "cloud-init", "status", "--wait", timeout=300)
    t_ci = time.monotonic() - t0
    if p.returncode != 0 or "done" not in p.stdout:
        why = ssh(d, key, ip, "cloud-init status --long; sudo -n grep -E 'WARNING|ERROR|Traceback' "
                  "/var/log/cloud-init.log | tail -n 20")
        raise AssertionError(f"cloud-init did not finish cleanly:\n{p.stdout}\n{why.stdout}")
    p = ssh(d, key, ip, "sudo", "-n", "id", "-u")
    assert p.stdout.strip() == "0", p  # the user has sudo
    print(f"\nDebian guest under TCG: agent IP after {t_agent:.1f} s, SSH login after "
          f"{t_login:.1f} s, cloud-init done after {t_ci:.1f} s")

    # exec through the agent: the image's kernel.
    kernel = json.load(open(os.path.join(IMAGE, "image.json")))["kernel_version"]
    p = d.cli("vm", "exec", "deb1", "--", "uname", "-r")
    assert p.stdout == kernel + "\n", p

    # stop goes through the agent.
    doc = d.api("POST", "/v1/vms/deb1/stop", {}, expect=202)
    task = d.wait_task(doc["task"], timeout=180)
    assert task["state"] == "succeeded", task
    assert task["result"]["stopped"] == "shut down by the guest agent", task
