"""The HTTP server itself, with the fake driver: raw request paths are checked
before routing (an encoded NUL, slash or dot segment is a 400, never a cut
path), a path cannot forge log lines, a flood of idle connections from one
client does not starve the others, and a first start is clean under UBSan."""

import os
import resource
import socket
import subprocess
import sys
import time

import pytest

import vireo_harness
from vireo_harness import Daemon, wait_until


def raw_request(daemon, data, timeout=10):
    """Sends raw bytes, returns (status, body) of the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(daemon.socket)
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def make_vm(daemon, name):
    task = daemon.api("POST", "/v1/vms", {"name": name}, expect=202)["task"]
    assert daemon.wait_task(task)["state"] == "succeeded"


BAD_PATHS = [
    ("DELETE", "/v1/vms/victim%00/disks/1", "victim%00"),
    ("DELETE", "/v1/vms/victim%00", "victim%00"),
    ("GET", "/v1/vms/victim%2fdisks", "victim%2fdisks"),
    ("DELETE", "/v1/vms/victim%2F..%2F/disks/1", "victim%2F..%2F"),
    ("GET", "/v1/vms/..", "'..'"),
    ("GET", "/v1/vms/victim/../victim", "'..'"),
    ("GET", "/v1/vms/%2e%2e", "%2e%2e"),
    ("GET", "/v1/vms/%2E", "%2E"),
    ("GET", "/v1/vms/victim%zz", "victim%zz"),
    ("GET", "/v1/vms/victim%", "victim%"),
    ("GET", "/v1/vms/victim%0d%0a", "victim%0d%0a"),
]


@pytest.mark.parametrize("method,path,segment", BAD_PATHS)
def test_bad_path_segments_are_refused_before_routing(fake_daemon, method, path, segment):
    d = fake_daemon
    make_vm(d, "victim")
    status, doc = d.request(method, path)
    assert status == 400, (status, doc)
    assert doc["error"]["code"] == "invalid-argument"
    assert segment in doc["error"]["message"], doc
    # Nothing happened to the VM the cut path would have named.
    assert d.vm("victim")["name"] == "victim"
    tasks = d.api("GET", "/v1/tasks")["tasks"]
    assert [t["kind"] for t in tasks if t["kind"] != "create"] == [], tasks


def test_literal_nul_in_the_request_line_is_refused(fake_daemon):
    d = fake_daemon
    make_vm(d, "victim")
    status, body = raw_request(d, b"DELETE /v1/vms/victim\0/disks/1 HTTP/1.1\r\n"
                                  b"Host: x\r\nConnection: close\r\n\r\n")
    assert status == 400 and "NUL" in body, body
    assert d.vm("victim")["name"] == "victim"


def test_good_paths_and_queries_still_route(fake_daemon):
    d = fake_daemon
    make_vm(d, "web-1")
    assert d.api("GET", "/v1/vms?view=summary")["vms"][0]["name"] == "web-1"
    assert d.api("GET", "/v1/vms/web%2D1")["name"] == "web-1"  # decoded once, by vireod
    status, doc = d.request("GET", "/v1/vms/web-1/nope")
    assert status == 404 and doc["error"]["code"] == "not-found"
    status, doc = d.request("PUT", "/v1/vms/web-1")
    assert status == 405 and doc["error"]["code"] == "method-not-allowed"
    task = d.api("DELETE", "/v1/vms/web-1?force=true", expect=202)["task"]
    assert d.wait_task(task)["state"] == "succeeded"


def test_a_newline_in_a_path_forges_no_log_line(fake_daemon):
    d = fake_daemon
    status, doc = d.request("GET", "/v1/vms/x%0aFAKE%20LINE")
    assert status == 400, doc
    status, doc = d.request("GET", "/v1/nope%0aFAKE%20LINE%20TOO/x")
    assert status == 400, doc
    # The request is logged (vireod runs with --debug), on one line.
    wait_until(lambda: "FAKE%20LINE%20TOO" in d.log(), 10, what="the request in the log")
    lines = d.log().splitlines()
    assert not [line for line in lines if line.startswith("FAKE")], lines[-20:]


CLIENT = r"""
import socket, sys, time
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(max(0.1, deadline - time.monotonic()))
        s.connect(sys.argv[1])
        s.sendall(b"GET /v1/host HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        print(answer.split(b"\r\n")[0].decode())
        sys.exit(0)
    except OSError as e:
        if time.monotonic() > deadline:
            print("failed:", e)
            sys.exit(1)
        time.sleep(0.2)
"""


def test_idle_connections_of_one_client_do_not_starve_another(fake_daemon):
    d = fake_daemon
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1300:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    socks = []
    silent = []  # connected, sent nothing
    try:
        for i in range(1100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(0.5)
            socks.append(s)
            try:
                s.connect(d.socket)
                if i % 3 == 1:
                    s.sendall(b"GET /v1/ho")  # half a request line
                elif i % 3 == 2:
                    s.sendall(b"GET /v1/host HTTP/1.1\r\nHost: x\r\n")  # no end of headers
                else:
                    silent.append(s)
            except OSError:
                pass  # the backlog is full (before the fix) or we were refused
        # Another client (another process) is served while all that is open.
        p = subprocess.run([sys.executable, "-c", CLIENT, d.socket, "30"],
                           capture_output=True, text=True, timeout=90)
        assert p.returncode == 0 and " 200 " in p.stdout, (p.stdout, p.stderr)
        # The flood's own connections over the limit were told why.
        last = silent[-1]
        last.settimeout(10)
        answer = last.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b'"unavailable"' in answer and b"connections" in answer, answer
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    # And once they are gone, the flooding client is served again.
    assert d.api("GET", "/v1/host")["driver"] == "fake"


def asan_vireod():
    build = os.environ.get("VIREO_ASAN_BUILD",
                           os.path.join(vireo_harness.BUILD, "..", "build-asan"))
    path = os.path.join(build, "src", "daemon", "vireod")
    return path if os.access(path, os.X_OK) else None


@pytest.mark.skipif(asan_vireod() is None, reason="no ASan/UBSan build (build-asan)")
def test_first_start_is_clean_under_ubsan(monkeypatch):
    """UBSan once reported memcpy(NULL, 0) when vireod started with no networks."""
    monkeypatch.setattr(vireo_harness, "VIREOD", asan_vireod())
    monkeypatch.setenv("UBSAN_OPTIONS", "print_stacktrace=1")
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=0")
    d = Daemon(driver="fake")
    try:
        make_vm(d, "a")
        d.api("GET", "/v1/vms")
        d.api("GET", "/v1/networks")
        d.request("GET", "/v1/vms/x%00")
        d.stop()
        assert "runtime error" not in d.log(), d.log()
    finally:
        d.cleanup()


@pytest.mark.skipif(asan_vireod() is None, reason="no ASan/UBSan build (build-asan)")
def test_a_console_upgrade_that_never_happens_leaks_nothing(monkeypatch):
    """The console handler answers 101 with a context holding the VM; when
    libmicrohttpd does not upgrade after all (an HTTP/1.0 request: no 101
    goes out), the request's end frees it (LeakSanitizer at vireod's exit).
    Connection must hold "upgrade" as a whole token, as MHD checks."""
    monkeypatch.setattr(vireo_harness, "VIREOD", asan_vireod())
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1")
    d = Daemon(driver="fake")
    try:
        make_vm(d, "c1")
        assert d.wait_task(d.api("POST", "/v1/vms/c1/start", expect=202)["task"])["state"] == \
            "succeeded"
        for _ in range(3):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(d.socket)
                s.sendall(b"GET /v1/vms/c1/console HTTP/1.0\r\nHost: l\r\n"
                          b"Connection: Upgrade\r\nUpgrade: vireo-console\r\n\r\n")
                assert b" 101 " not in s.recv(4096)
        status, doc = raw_request(d, b"GET /v1/vms/c1/console HTTP/1.1\r\nHost: l\r\n"
                                     b"Connection: close, x-upgrade\r\n"
                                     b"Upgrade: vireo-console\r\n\r\n")
        assert status == 400 and "Connection: Upgrade" in doc, (status, doc)
        d.stop()
        leaks = [l for l in d.log().splitlines() if "vo_api_vm_console" in l]
        assert not leaks, d.log()
    finally:
        d.cleanup()


def test_serves_with_file_descriptors_past_1024():
    """A host with hundreds of VMs holds more than 1024 fds in vireod (QMP,
    pidfds, consoles); the HTTP server used select(), which refuses any fd
    past FD_SETSIZE: vireod then failed to serve at all. Here vireod starts
    with 1100 inherited fds, so every fd it opens is past 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the open-files limit ({hard}) is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096 if hard == resource.RLIM_INFINITY
                                                else min(4096, hard), hard))
    fds = []
    try:
        fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(1100)]
        d = Daemon(driver="fake", popen_extra={"pass_fds": fds})
    finally:
        for fd in fds:
            os.close(fd)
    try:
        assert d.api("GET", "/v1/host")["driver"] == "fake"
        make_vm(d, "many-fds")
        assert d.api("GET", "/v1/vms/many-fds")["name"] == "many-fds"
    finally:
        d.cleanup()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
