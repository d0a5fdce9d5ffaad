"""The multi-host harness itself (cluster_harness.py), and vireod's HTTPS
listener with mutual TLS that it gives every host: 3 hosts on one switch
answer each other only with a certificate of the cluster's CA; a cut link
stops traffic and a healed one brings it back; killing a host ends every
one of its processes; cleanup leaves nothing."""

import os
import subprocess
import sys

from cluster_harness import Pki, netns_pids, wait_reachability
from vireo_harness import VIREOD, pid_alive


def test_three_hosts_answer_each_other_over_mutual_tls(cluster):
    c = cluster(3)
    for src in c.hosts:
        for dst in c.hosts:
            status, doc = dst.https("GET", "/v1/host", via=src)
            assert status == 200, (src.name, dst.name, doc)
            assert doc["driver"] == "fake"
    h1, h2, _ = c.hosts
    # The same routes and answers as on the Unix socket, errors included.
    status, doc = h2.https("POST", "/v1/vms", {"name": "web1", "memory_mib": 64}, via=h1)
    assert status == 202, doc
    assert h2.wait_task(doc["task"])["state"] == "succeeded"
    status, doc = h2.https("GET", "/v1/vms/web1", via=h1)
    assert status == 200 and doc["name"] == "web1"
    status, doc = h2.https("GET", "/v1/vms/nope", via=h1)
    assert status == 404 and doc["error"]["code"] == "not-found"
    assert h1.api("GET", "/v1/vms")["vms"] == []  # h1's own store is its own


def test_a_client_without_the_cluster_certificate_is_refused(cluster):
    c = cluster(2)
    h1, h2 = c.hosts
    # No client certificate: the TLS handshake passes, the request does not.
    status, doc = h2.https("GET", "/v1/host", via=h1, cert=False)
    assert status == 401, doc
    assert doc["error"]["code"] == "unauthenticated"
    assert "client certificate" in doc["error"]["message"]
    status, doc = h2.https("POST", "/v1/vms", {"name": "x", "memory_mib": 64}, via=h1,
                           cert=False)
    assert status == 401, doc
    assert h2.api("GET", "/v1/vms")["vms"] == []  # nothing was made
    # A certificate of another CA, for the right address: refused too.
    other = Pki(os.path.join(c.tmp, "other-ca"), cn="another CA")
    crt, key = other.host_cert("intruder", [h1.address])
    status, doc = h2.https("GET", "/v1/host", via=h1, client=(crt, key))
    assert status == 401 or status is None, doc
    if status == 401:
        assert doc["error"]["code"] == "unauthenticated"
    # A certificate of the cluster's CA only for servers (no clientAuth).
    crt, key = c.pki.host_cert("server-only", [h1.address], usage="serverAuth")
    status, doc = h2.https("GET", "/v1/host", via=h1, client=(crt, key))
    assert status == 401, doc
    assert "not accepted" in doc["error"]["message"]
    # The server's certificate must name the address the client asked for:
    # h2's certificate does not name h1's address.
    p = subprocess.run(["ip", "netns", "exec", h1.host_netns.name, "curl", "-sS",
                        "--max-time", "10", "--cacert", h2.ca, "--cert", h1.cert, "--key", h1.key,
                        "--connect-to", f"{h1.address}:{h2.port}:{h2.address}:{h2.port}",
                        f"https://{h1.address}:{h2.port}/v1/host"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, p.stdout
    # Plain HTTP on the TLS port gets no API answer.
    p = subprocess.run(["ip", "netns", "exec", h1.host_netns.name, "curl", "-sS",
                        "--max-time", "10", f"http://{h2.address}:{h2.port}/v1/host"],
                       capture_output=True, text=True, timeout=30)
    assert '"driver"' not in p.stdout


UNAUTHENTICATED_CLIENT = r'''
import socket, ssl, sys
host, port, ca, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)

def ask(request):
    """Sends request without a client certificate; what came until the server closed."""
    s = ctx.wrap_socket(socket.create_connection((host, port), timeout=60), server_hostname=host)
    s.sendall(request)
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode(errors="replace")

# A body announced but not sent: the 401 does not wait for it, and the
# server closes the connection after it.
print(ask(b"POST /v1/vms HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
          b"Content-Length: 1000000\r\n\r\n{"))
print("----")
# Keep-alive requests: each one closed after its 401 too.
answers = [ask(b"GET /v1/host HTTP/1.1\r\nHost: h\r\n\r\n") for _ in range(n)]
print(sum(a.startswith("HTTP/1.1 401") for a in answers))
'''


def test_an_unauthenticated_client_is_answered_at_once_and_closed(cluster):
    c = cluster(1)
    h1 = c.hosts[0]
    script = os.path.join(c.tmp, "unauthenticated-client.py")
    with open(script, "w") as f:
        f.write(UNAUTHENTICATED_CLIENT)
    p = subprocess.run(["ip", "netns", "exec", h1.host_netns.name, sys.executable, script,
                        h1.address, str(h1.port), h1.ca, "30"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    first, _, rest = p.stdout.partition("----\n")
    head = first.split("\r\n\r\n")[0]
    assert head.startswith("HTTP/1.1 401"), first
    assert "connection: close" in head.lower(), head
    assert '"unauthenticated"' in first
    assert rest.strip() == "30", p.stdout
    # 31 refusals, a few lines of log: a client cannot flood it.
    lines = [l for l in h1.log().splitlines() if "refused a request from" in l]
    assert 1 <= len(lines) < 10, lines
    assert h1.api("GET", "/v1/vms")["vms"] == []  # nothing was made


def test_cut_and_heal_a_link(cluster):
    c = cluster(3)
    h1, h2, h3 = c.hosts
    c.cut_link(h2)
    wait_reachability(h1, h2, False)
    wait_reachability(h2, h3, False)
    assert h1.reaches(h3)  # the others still meet
    assert h2.api("GET", "/v1/host")["driver"] == "fake"  # h2 itself runs on
    c.heal_link(h2)
    wait_reachability(h1, h2, True)
    wait_reachability(h2, h3, True)


def test_kill_host_ends_every_process_of_that_host(cluster):
    c = cluster(3)
    h1, h2, h3 = c.hosts
    # A process of the host's own (etcd, later), by PID.
    extra = h3.spawn("sleep", "600")
    # A pid the host once knew (a stopped VM's qemu.pid, its API "pid")
    # that another process has now: not the host's, never killed.
    stranger = subprocess.Popen(["sleep", "600"])
    try:
        os.makedirs(os.path.join(h3.run_dir, "vms", "stopped"), exist_ok=True)
        with open(os.path.join(h3.run_dir, "vms", "stopped", "qemu.pid"), "w") as f:
            f.write(f"{stranger.pid}\n")
        h3.qemu_pids.add(stranger.pid)
        before = h3.pids()
        assert h3.proc.pid in before and extra.pid in before
        assert stranger.pid not in before
        assert len(before) >= 3  # vireod, the extra one, dnsmasq of its default network
        killed = c.kill_host(h3)
        assert stranger.poll() is None and stranger.pid not in killed
    finally:
        stranger.kill()
        stranger.wait(timeout=10)
    assert before <= killed
    assert not any(pid_alive(p) for p in killed)
    assert netns_pids(h3.host_netns.name) == set()
    wait_reachability(h1, h3, False)
    assert h1.reaches(h2) and h2.reaches(h1)
    # The others' processes are untouched.
    assert h1.proc.poll() is None and h2.proc.poll() is None


def test_cleanup_removes_namespaces_processes_and_directories(cluster):
    c = cluster(2)
    names = [ns.name for ns in c.namespaces]
    pids = set().union(*(h.pids() for h in c.hosts))
    c.hosts[0].spawn("sleep", "600")
    c.cleanup()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names)
    assert not any(pid_alive(p) for p in pids)
    assert not os.path.exists(c.tmp)


def test_listener_options_are_all_or_none_and_checked(tmp_path):
    def vireod(*args):
        return subprocess.run([VIREOD, "--state-dir", str(tmp_path / "s"), "--run-dir",
                               str(tmp_path / "r"), "--driver", "fake", *args],
                              capture_output=True, text=True, timeout=30)
    p = vireod("--listen", "127.0.0.1:8443")
    assert p.returncode == 2
    assert "--tls-cert --tls-key --tls-ca" in p.stderr
    pki = Pki(str(tmp_path / "pki"))
    crt, key = pki.host_cert("h", ["127.0.0.1"])
    tls = ["--tls-cert", crt, "--tls-key", key, "--tls-ca", pki.ca_cert]
    p = vireod("--tls-cert", crt)
    assert p.returncode == 2 and "missing: --listen --tls-key --tls-ca" in p.stderr
    p = vireod("--listen", "127.0.0.1", *tls)
    assert p.returncode == 2 and "expected ADDRESS:PORT" in p.stderr
    p = vireod("--listen", "localhost:8443", *tls)
    assert p.returncode == 2 and "not an IP address" in p.stderr
    p = vireod("--listen", "fd00::5:8443", *tls)
    assert p.returncode == 2 and "IPv6 address goes in brackets" in p.stderr
    p = vireod("--listen", "[10.0.0.5]:8443", *tls)
    assert p.returncode == 2 and "brackets are for an IPv6 address" in p.stderr
    p = vireod("--listen", "127.0.0.1:99999", *tls)
    assert p.returncode == 2 and "port must be 1 to 65535" in p.stderr
    p = vireod("--listen", "127.0.0.1:8443", "--tls-cert", str(tmp_path / "none.crt"),
               "--tls-key", key, "--tls-ca", pki.ca_cert)
    assert p.returncode == 2 and "none.crt: cannot read it" in p.stderr
    other_crt, other_key = pki.host_cert("other", ["127.0.0.1"])
    p = vireod("--listen", "127.0.0.1:8443", "--tls-cert", crt, "--tls-key", other_key,
               "--tls-ca", pki.ca_cert)
    assert p.returncode == 2 and "--tls-cert" in p.stderr and "--tls-key" in p.stderr
    p = vireod("--listen", "127.0.0.1:8443", "--tls-cert", crt, "--tls-key", key,
               "--tls-ca", key)
    assert p.returncode == 2 and "--tls-ca" in p.stderr
    assert not os.path.exists(tmp_path / "s")  # refused before anything was made
