"""A host without a quorum (docs/cluster.md, "Losing the quorum"): on a
3-host cluster formed with `vireo cluster init/join`, h1's link is cut, so
its etcd member is a minority of one. Reads on h1 still answer, from its
own member, marked possibly stale (header Vireo-Stale, the CLI's warning
on stderr, exit 0; a comment line in an open event stream); changes answer 503
"cluster has no quorum" and change nothing; `cluster show` says quorum NO
and `host list` still works. Once healed, answers are not marked any more
and changes work."""

import http.client
import socket
import threading

from test_any_door import create, form
from vireo_harness import wait_until

STALE = "Vireo-Stale"
WARNING = "warning: the cluster has no quorum; this may be out of date (since "


def once(h, method, path, body=None, timeout=60):
    """One request, no retry on 503: (status, headers, body text)."""
    conn = http.client.HTTPConnection("localhost", timeout=timeout)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.settimeout(timeout)
    conn.sock.connect(h.socket)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


def stale_vm_list(h):
    status, headers, text = once(h, "GET", "/v1/vms?view=summary")
    return status == 200 and STALE in headers


def test_quorum_lost_reads_stale_writes_503(cluster):
    c = cluster(3, listen=False)
    h1, h2, h3 = c.hosts
    form(c)
    create(h1, "a1")
    create(h2, "b2")

    # With a quorum: nothing marked.
    status, headers, _ = once(h1, "GET", "/v1/vms")
    assert status == 200 and STALE not in headers, headers
    p = h1.cli("vm", "list")
    assert "warning" not in p.stderr

    # An event stream of h1's, read by a thread of the test's.
    stream = http.client.HTTPConnection("localhost", timeout=120)
    stream.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.sock.connect(h1.socket)
    stream.request("GET", "/v1/events")
    stream_resp = stream.getresponse()
    assert stream_resp.status == 200
    stream_lines = []

    def read_stream():
        try:
            for raw in stream_resp:
                stream_lines.append(raw.decode(errors="replace").rstrip("\n"))
        except Exception:  # the test closes the stream under it: done
            pass

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()

    c.cut_link(h1)
    try:
        # The first read after the cut waits for etcd's own timeout (about
        # 7 s) before it answers from h1's member; later ones at once.
        wait_until(lambda: stale_vm_list(h1), 60, what="h1's VM list marked stale")
        status, headers, text = once(h1, "GET", "/v1/vms?view=summary")
        assert status == 200, text
        assert headers[STALE].startswith("cluster has no quorum since 20"), headers
        assert '"a1"' in text and '"b2"' in text, text
        p = h1.cli("vm", "list")
        assert p.returncode == 0
        assert WARNING in p.stderr, p.stderr
        assert p.stderr.count("warning:") == 1, p.stderr
        names = [line.split()[0] for line in p.stdout.splitlines()[1:]]
        assert names == ["a1", "b2"], p.stdout
        # One object of h1's too (b2's requests go to h2, which h1 cannot reach).
        status, headers, text = once(h1, "GET", "/v1/vms/a1")
        assert status == 200 and STALE in headers, (status, headers, text)

        # The stream opened before says so in a comment line.
        wait_until(lambda: any(line.startswith(": cluster has no quorum since 20")
                               for line in stream_lines), 60,
                   what="the event stream's no-quorum comment")

        # Changes: 503, in the store's words, nothing made.
        status, headers, text = once(h1, "POST", "/v1/vms",
                                     '{"name": "c1", "memory_mib": 64, "host": "h1"}')
        assert status == 503, text
        assert "cluster has no quorum" in text and "nothing was changed" in text, text
        p = h1.cli("vm", "create", "c2", "--memory", "64", check=False)
        assert p.returncode != 0 and "cluster has no quorum" in p.stderr, p.stderr
        p = h1.cli("vm", "delete", "a1", check=False)
        assert p.returncode != 0 and "cluster has no quorum" in p.stderr, p.stderr

        # The cluster view says so, and still lists the hosts.
        shown = h1.cli_json("cluster", "show")
        assert shown["quorum"] is False
        assert sorted(x["name"] for x in shown["hosts"]) == ["h1", "h2", "h3"]
        p = h1.cli("cluster", "show")
        assert "quorum:" in p.stdout and "NO" in p.stdout, p.stdout
        p = h1.cli("host", "list")
        assert p.returncode == 0 and WARNING in p.stderr, p.stderr
        assert {line.split()[0] for line in p.stdout.splitlines()[1:]} == {"h1", "h2", "h3"}

        # The other side has its quorum: not marked, changes work.
        status, headers, _ = once(h2, "GET", "/v1/vms")
        assert status == 200 and STALE not in headers, headers
    finally:
        c.heal_link(h1)
        stream.sock.shutdown(socket.SHUT_RDWR)
        stream.close()
        reader.join(timeout=30)

    wait_until(lambda: not stale_vm_list(h1), 60, what="h1's answers not stale once healed")
    p = h1.cli("vm", "list")
    assert "warning" not in p.stderr, p.stderr
    assert not any(line.split()[0] == "c1" for line in p.stdout.splitlines()[1:]), p.stdout
    # (h1's member coming back may force one more election: bounded wait.)
    wait_until(lambda: h1.cli_json("cluster", "show")["quorum"] is True, 60,
               what="cluster show on h1 says quorum yes once healed")
    wait_until(lambda: once(h1, "POST", "/v1/vms",
                            '{"name": "c1", "memory_mib": 64, "host": "h1"}')[0] == 202, 60,
               what="a create on h1 once healed")
