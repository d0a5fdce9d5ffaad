"""Bad input gets a clear 4xx JSON error (or a CLI message and a non-zero exit)
and leaves nothing behind: no VM document, no files, no processes."""

import os

import pytest


def snapshot(daemon):
    """What a half-made VM could leave: documents, state and run files."""
    vms = daemon.api("GET", "/v1/vms")["vms"]
    files = []
    for root in (daemon.state_dir, daemon.run_dir):
        for dirpath, _, names in os.walk(os.path.join(root, "vms")):
            files += [os.path.join(dirpath, n) for n in names]
    return sorted(v["id"] for v in vms), sorted(files)


def expect_error(daemon, method, path, status, code, body=None, raw=None, headers=None,
                 fragment=None):
    got_status, doc = daemon.request(method, path, body=body, raw=raw, headers=headers)
    assert got_status == status, (got_status, doc)
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}, doc
    assert doc["error"]["code"] == code, doc
    assert doc["error"]["message"]
    if fragment:
        assert fragment in doc["error"]["message"], doc


BAD_CREATES = [
    ({"name": "Bad_Name"}, "name"),
    ({"name": "-lead"}, "name"),
    ({"name": "a" * 64}, "name"),
    ({"name": "../../etc"}, "name"),
    ({"name": ""}, "name"),
    ({"name": "ok", "vcpus": 0}, "vcpus"),
    ({"name": "ok", "vcpus": 100000}, "vcpus"),
    ({"name": "ok", "memory_mib": 16}, "memory"),
    ({"name": "ok", "memory_mib": 1 << 40}, "memory"),
    ({"name": "ok", "image": "nope"}, "image 'nope' does not exist"),
    ({"name": "ok", "image": "../default"}, "image"),
    ({"name": "ok", "accel": "xen"}, "accel"),
    ({"name": "ok", "cpus": 2}, "cpus"),
    ({"name": "ok", "vcpus": "2"}, ""),
    ({"name": "ok", "disk_size_bytes": 1024}, "smaller than image"),
    ({}, "name"),
]


@pytest.mark.parametrize("body,fragment", BAD_CREATES)
def test_bad_create_leaves_nothing(daemon, body, fragment):
    before = snapshot(daemon)
    expect_error(daemon, "POST", "/v1/vms", 400, "invalid-argument", body=body, fragment=fragment)
    assert snapshot(daemon) == before


def test_protocol_errors(daemon):
    before = snapshot(daemon)
    expect_error(daemon, "POST", "/v1/vms", 400, "invalid-argument", raw=b'{"name": "x"',
                 headers={"Content-Type": "application/json"}, fragment="malformed JSON")
    expect_error(daemon, "POST", "/v1/vms", 400, "invalid-argument", raw=b'[1,2]',
                 headers={"Content-Type": "application/json"})
    expect_error(daemon, "POST", "/v1/vms", 400, "invalid-argument",
                 raw=b'{"name":"a","name":"b"}', headers={"Content-Type": "application/json"})
    expect_error(daemon, "POST", "/v1/vms", 415, "unsupported-media-type", raw=b'{"name":"x"}',
                 headers={"Content-Type": "text/plain"})
    big = b'{"name":"x","pad":"' + b"a" * (2 << 20) + b'"}'
    expect_error(daemon, "POST", "/v1/vms", 413, "payload-too-large", raw=big,
                 headers={"Content-Type": "application/json"})
    expect_error(daemon, "GET", "/v1/vms/nosuch", 404, "not-found", fragment="nosuch")
    expect_error(daemon, "POST", "/v1/vms/nosuch/start", 404, "not-found")
    expect_error(daemon, "GET", "/v1/nothing", 404, "not-found")
    expect_error(daemon, "PUT", "/v1/vms", 405, "method-not-allowed")
    expect_error(daemon, "GET", "/v1/tasks/0000", 404, "not-found")
    assert snapshot(daemon) == before


def test_duplicate_name_and_wrong_state(daemon):
    daemon.cli("vm", "create", "dup", "--memory", "128M")
    before = snapshot(daemon)
    expect_error(daemon, "POST", "/v1/vms", 409, "already-exists", body={"name": "dup"})
    expect_error(daemon, "POST", "/v1/vms/dup/stop", 409, "invalid-state", body={})
    expect_error(daemon, "POST", "/v1/vms/dup/pause", 409, "invalid-state")
    expect_error(daemon, "POST", "/v1/vms/dup/stop", 400, "invalid-argument",
                 body={"timeout_s": -1})
    expect_error(daemon, "PATCH", "/v1/vms/dup", 400, "invalid-argument", body={"name": "Bad"})
    expect_error(daemon, "PATCH", "/v1/vms/dup", 400, "invalid-argument", body={"vcpus": 0})
    expect_error(daemon, "GET", "/v1/vms/dup/console", 400, "invalid-argument")
    assert snapshot(daemon) == before


CLI_ERRORS = [
    (["vm", "create", "Bad"], "name"),
    (["vm", "create", "ok", "--memory", "12X"], "--memory"),
    (["vm", "create", "ok", "--vcpus", "two"], "--vcpus"),
    (["vm", "create", "ok", "--memory", "16M"], "memory"),
    (["vm", "create", "ok", "--image", "nope"], "nope"),
    (["vm", "start", "nosuch"], "nosuch"),
    (["vm", "frobnicate", "x"], "frobnicate"),
    (["vm", "list", "--output", "xml"], "xml"),
]


@pytest.mark.parametrize("args,fragment", CLI_ERRORS)
def test_cli_errors_name_what_to_fix(daemon, args, fragment):
    before = snapshot(daemon)
    p = daemon.cli(*args, check=False)
    assert p.returncode != 0
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert lines and fragment in p.stderr, p.stderr
    assert snapshot(daemon) == before


def test_cli_cannot_reach_daemon(daemon, tmp_path):
    from vireo_harness import VIREO
    import subprocess
    p = subprocess.run([VIREO, "--socket", str(tmp_path / "none.sock"), "vm", "list"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "is vireod running" in p.stderr
