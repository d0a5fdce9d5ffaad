"""System tests of vireod's event stream (GET /v1/events, Server-Sent
Events), ETag / If-Match on documents, and `vireo events`.

The stream is read by a small client of the test's own (EventStream: a
raw socket, HTTP/1.1 chunked decoding, SSE parsing), so what is tested is
the bytes vireod sends. Most tests use the fake driver (a real boot adds
nothing to what the stream says); one drives a real QEMU VM. Every wait is
bounded by a socket timeout or wait_until."""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from vireo_harness import VIREO, VIREOD, Daemon, UnixHTTPConnection, wait_until

READ_TIMEOUT_S = 30


class EventStream:
    """One GET /v1/events connection; events() yields (id, event, data)."""

    def __init__(self, d, query="", last_event_id=None, timeout=READ_TIMEOUT_S):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(d.socket)
        headers = "Host: localhost\r\nAccept: text/event-stream\r\n"
        if last_event_id is not None:
            headers += f"Last-Event-ID: {last_event_id}\r\n"
        path = "/v1/events" + (f"?{query}" if query else "")
        self.sock.sendall(f"GET {path} HTTP/1.1\r\n{headers}\r\n".encode())
        self.buf = b""
        self.text = ""     # decoded body not yet parsed into events
        self.chunked = False
        self.eof = False
        self.ended_cleanly = False
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in
                        (line.split(":", 1) for line in lines[1:] if ":" in line)}
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.comments = []
        self.last_id = None

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
        self.buf += data
        return bool(data)

    def _read_until(self, sep):
        while sep not in self.buf:
            if not self._recv():
                raise EOFError("connection closed")
        head, self.buf = self.buf.split(sep, 1)
        return head

    def _body(self):
        """Decodes what arrived of the body into self.text; False at its end."""
        if not self.chunked:
            if not self.buf and not self._recv():
                return False
            self.text += self.buf.decode()
            self.buf = b""
            return True
        while b"\r\n" not in self.buf:
            if not self._recv():
                return False
        size_line, rest = self.buf.split(b"\r\n", 1)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            self.ended_cleanly = True  # the last chunk: the body is complete
            return False
        while len(rest) < size + 2:
            self.buf = size_line + b"\r\n" + rest
            if not self._recv():
                return False
            size_line, rest = self.buf.split(b"\r\n", 1)
        self.text += rest[:size].decode()
        self.buf = rest[size + 2:]
        return True

    def next_event(self):
        """The next event as (id, event, data dict); None at the end of the stream."""
        while True:
            while "\n\n" not in self.text:
                if not self._body():
                    return None
            block, self.text = self.text.split("\n\n", 1)
            fields = {}
            for line in block.split("\n"):
                if line.startswith(":"):
                    self.comments.append(line)
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
            if "id" in fields:  # also a heartbeat's id without data (no event)
                self.last_id = fields["id"]
            if "data" in fields:
                data = json.loads(fields["data"])
                # "R", or "R.k" for all but the last change of a transaction.
                ident = fields.get("id")
                ident = int(ident) if ident is not None and ident.isdigit() else ident
                return ident, fields.get("event"), data

    def read_until(self, predicate, limit=500):
        """Events until one for which predicate(data) holds (included)."""
        got = []
        for _ in range(limit):
            ev = self.next_event()
            assert ev is not None, f"the stream ended before the wanted event; got {got}"
            got.append(ev)
            if predicate(ev[2]):
                return got
        raise AssertionError(f"no wanted event in {limit}: {got}")

    def rest(self):
        """Every event until the stream ends (follow=false)."""
        got = []
        while (ev := self.next_event()) is not None:
            got.append(ev)
        return got

    def close(self):
        self.sock.close()


def opened_at(stream):
    """The revision a stream starts after, from its first comment."""
    while not stream.comments:
        assert stream._body(), "the stream ended before its first comment"
        if "\n\n" in stream.text:
            block, stream.text = stream.text.split("\n\n", 1)
            stream.comments += [l for l in block.split("\n") if l.startswith(":")]
    return int(stream.comments[0].rsplit(" ", 1)[1])


def history(d, query="", since=0):
    """Every event after since, as a finite stream (follow=false) gives them."""
    s = EventStream(d, f"since={since}&follow=false" + (f"&{query}" if query else ""))
    try:
        assert s.status == 200, s.status
        return s.rest()
    finally:
        s.close()


def new_dir(d, name):
    path = os.path.join(d.tmp, name)
    os.makedirs(path)
    return path


def vm_state(data):
    obj = data.get("object") or {}
    return (obj.get("status") or {}).get("state")


def lifecycle_events(d, name):
    """Creates, starts and stops VM name, reading its events on a stream
    opened before; returns them."""
    stream = EventStream(d, "kind=vm")
    try:
        assert stream.status == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        d.cli("vm", "create", name, "--memory", "128M")
        vm_id = d.vm(name)["id"]
        d.cli("vm", "start", name)
        got = stream.read_until(lambda e: e["id"] == vm_id and vm_state(e) == "running")
        d.cli("vm", "stop", name, "--force")
        got += stream.read_until(lambda e: e["id"] == vm_id and vm_state(e) == "stopped")
        return vm_id, got
    finally:
        stream.close()


def check_lifecycle(vm_id, got):
    ids = [i for i, _, _ in got]
    assert all(a < b for a, b in zip(ids, ids[1:])), f"ids not strictly increasing: {ids}"
    assert all(ev == "vm" and data["kind"] == "vm" for _, ev, data in got)
    assert all(data["rev"] == i for i, _, data in got)
    mine = [data for _, _, data in got if data["id"] == vm_id]
    states = [vm_state(data) for data in mine]
    assert mine[0]["action"] == "put" and mine[0]["object"]["spec"]["id"] == vm_id
    # In order: defined first, then starting, running, stopping/stopped.
    order = ["defined", "starting", "running", "stopped"]
    firsts = [states.index(s) for s in order if s in states]
    assert firsts == sorted(firsts) and "running" in states and states[-1] == "stopped", states
    assert states.index("defined") < states.index("running"), states


def test_vm_lifecycle_events_in_order(fake_daemon):
    vm_id, got = lifecycle_events(fake_daemon, "ev1")
    check_lifecycle(vm_id, got)

    # The same changes are in the stream's history, with the same ids.
    past = {i: data for i, _, data in history(fake_daemon, "kind=vm")}
    for i, _, data in got:
        assert past[i] == data
    event_follows_the_change(fake_daemon, "ev1", vm_id)


def event_follows_the_change(d, name, vm_id):
    """A client that reloads on an event sees what the event says: a VM is
    listed once its first event is out, and no longer listed once its
    delete's is (the web UI reloaded on the delete's task end instead).
    The VM's state directory is given a few thousand files, which vireod
    removes with it: before, that removal came between the delete's commit
    (its event) and the VM leaving the list, and a reload on the event
    still listed it."""
    def listed():
        return {v["name"] for v in d.api("GET", "/v1/vms")["vms"]}

    stream = EventStream(d, "kind=vm")
    try:
        d.api("POST", "/v1/vms", {"name": name + "b", "memory_mib": 64}, expect=202)
        stream.read_until(lambda e: e["action"] == "put" and
                          (e["object"] or {}).get("spec", {}).get("name") == name + "b")
        assert name + "b" in listed()
        ballast = os.path.join(d.state_dir, "vms", vm_id, "ballast")
        os.makedirs(ballast)
        for i in range(3000):
            open(os.path.join(ballast, str(i)), "w").close()
        task = d.api("DELETE", f"/v1/vms/{name}", expect=202)["task"]
        stream.read_until(lambda e: e["id"] == vm_id and e["action"] == "delete")
        assert name not in listed(), "listed after its delete's event"
        assert d.request("GET", f"/v1/vms/{vm_id}")[0] == 404
        assert d.wait_task(task)["state"] == "succeeded"
    finally:
        stream.close()


def test_vm_lifecycle_events_real_qemu(daemon):
    vm_id, got = lifecycle_events(daemon, "evq")
    check_lifecycle(vm_id, got)
    for _, _, data in got:
        pid = (data["object"] or {}).get("status", {}).get("pid")
        if pid:
            daemon.qemu_pids.add(pid)


def test_resume_with_last_event_id_misses_nothing(fake_daemon):
    d = fake_daemon
    stream = EventStream(d)
    start = opened_at(stream)
    d.cli("vm", "create", "r1", "--memory", "128M")
    first = stream.read_until(lambda e: e["kind"] == "vm")
    last_seen = first[-1][0]
    stream.close()
    # Changes while the client is away: several kinds, a delete among them.
    d.cli("vm", "start", "r1")
    d.cli("vm", "create", "r2", "--memory", "128M")
    d.cli("pool", "create", "extra", "--path", new_dir(d, "extra-pool"))
    d.cli("pool", "delete", "extra")
    d.cli("vm", "stop", "r1", "--force")
    everything = history(d, since=start)
    ids = [i for i, _, _ in everything]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    expected = [e for e in everything if e[0] > last_seen]
    assert expected, "nothing changed while the client was away"
    assert any(data["action"] == "delete" and data["kind"] == "pool" for _, _, data in expected)

    resumed = EventStream(d, last_event_id=last_seen)
    got = resumed.read_until(lambda e: e["rev"] == expected[-1][0])
    resumed.close()
    assert got == expected  # none missed, none twice, same order

    # since= is the same as Last-Event-ID.
    again = EventStream(d, f"since={last_seen}")
    assert again.read_until(lambda e: e["rev"] == expected[-1][0]) == expected
    again.close()
    # The stream's start matches what it resumed from: before, the events
    # the client had already seen are all at or below last_seen.
    assert all(i <= last_seen for i, _, _ in first)


def test_stream_without_resume_starts_now(fake_daemon):
    d = fake_daemon
    d.cli("vm", "create", "old", "--memory", "128M")
    stream = EventStream(d)
    start = opened_at(stream)
    d.cli("vm", "create", "new", "--memory", "128M")
    new_id = d.vm("new")["id"]
    got = stream.read_until(lambda e: e["id"] == new_id)
    stream.close()
    assert all(i > start for i, _, _ in got)
    old_id = d.vm("old")["id"]
    assert all(data["id"] != old_id for _, _, data in got)


def test_filters(fake_daemon):
    d = fake_daemon
    d.cli("vm", "create", "f1", "--memory", "128M")
    d.cli("vm", "create", "f2", "--memory", "128M")
    d.cli("pool", "create", "fpool", "--path", new_dir(d, "fpool"))
    f1 = d.vm("f1")["id"]
    everything = history(d)
    kinds = {data["kind"] for _, _, data in everything}
    assert {"vm", "volume", "pool", "network"} <= kinds

    only_vms = history(d, "kind=vm")
    assert only_vms == [e for e in everything if e[2]["kind"] == "vm"]
    two = history(d, "kind=vm,pool")
    assert two == [e for e in everything if e[2]["kind"] in ("vm", "pool")]
    repeated = history(d, "kind=pool&kind=vm")
    assert repeated == two
    one = history(d, f"object={f1}")
    assert one and one == [e for e in everything if e[2]["id"] == f1]
    assert history(d, f"kind=vm&object={f1}") == one
    assert history(d, f"kind=pool&object={f1}") == []
    vol = history(d, "kind=volume&object=default/f2-disk0")
    assert vol and all(data["id"] == "default/f2-disk0" for _, _, data in vol)

    for query, word in (("kind=bogus", "bogus"), ("kind=", "kind"), ("kind=,&follow=false", "kind"),
                        ("kind=,,&kind=&follow=false", "kind"), ("since=abc", "abc"),
                        ("since=-1", "since"), ("since=99999999", "newer"),
                        ("object=", "object"), ("follow=maybe", "follow")):
        status, doc = d.request("GET", f"/v1/events?{query}")
        assert status == 400, (query, status, doc)
        assert doc["error"]["code"] == "invalid-argument" and word in doc["error"]["message"]
    status, doc = d.request("GET", "/v1/events", headers={"Last-Event-ID": "x1"})
    assert status == 400 and "Last-Event-ID" in doc["error"]["message"]


def test_host_records_are_events(fake_daemon):
    """A standalone host's live record (state, maintenance, load) is kind
    host on its stream, as a cluster's hosts' records are (the web UI's
    host pages follow them, docs/events.md); kind=host was a 400."""
    d = fake_daemon
    host = d.api("GET", "/v1/host")
    got = history(d, "kind=host")
    assert got and all(event == "host" and data["id"] == host["id"] for _, event, data in got), got
    record = got[-1][2]["object"]
    assert record["name"] == host["name"] and record["state"] == "online" and "load" in record
    assert history(d, f"kind=host&object={host['id']}") == got
    # The CLI takes the host's name as it takes a VM's (events name it by id).
    by_name = d.cli("events", "--kind", "host", "--object", host["name"]).stdout.splitlines()
    assert by_name and all(line.split()[1:4:2] == ["host", host["id"]] for line in by_name), by_name
    two = history(d, "kind=vm,host")
    every = [e for e in history(d) if e[2]["kind"] in ("vm", "host")]
    last = min(two[-1][0], every[-1][0])  # a record written between the two reads
    assert [e for e in two if e[0] <= last] == [e for e in every if e[0] <= last]


def test_one_transactions_events_resume_exactly(fake_daemon):
    """A VM delete removes the VM's document and its snapshots' in one store
    transaction (one revision R): the events are R.1 (the snapshot) and R
    (the VM), and a client that resumes after R.1 gets the VM's delete and
    nothing else; after R, nothing of R."""
    d = fake_daemon
    d.cli("vm", "create", "tx1", "--memory", "128M")
    vm_id = d.vm("tx1")["id"]
    d.cli("snapshot", "create", "tx1", "s1")
    query = "kind=vm,snapshot"
    stream = EventStream(d, query)
    opened_at(stream)
    d.cli("vm", "delete", "tx1")
    got = stream.read_until(lambda e: e["kind"] == "vm" and e["action"] == "delete")
    stream.close()
    deletes = [(i, data) for i, _, data in got if data["action"] == "delete"]
    assert len(deletes) == 2, got
    (snap_id, snap), (vm_ev_id, vm) = deletes
    rev = vm["rev"]
    assert snap["rev"] == rev and snap["kind"] == "snapshot" and vm["id"] == vm_id
    assert (snap_id, vm_ev_id) == (f"{rev}.1", rev), deletes
    resumed = EventStream(d, query + "&follow=false", last_event_id=snap_id).rest()
    assert [(i, data["kind"], data["action"]) for i, _, data in resumed] == \
        [(rev, "vm", "delete")], resumed
    assert EventStream(d, query + "&follow=false", last_event_id=str(rev)).rest() == []


def test_heartbeat_carries_the_resume_point(fake_daemon):
    """A quiet filtered stream: its heartbeat says how far it has read (an
    id without data), so a client that resumes from it does not fall back
    on an old event id the change log may have dropped meanwhile."""
    d = fake_daemon
    stream = EventStream(d, "kind=network", timeout=40)
    start = opened_at(stream)
    d.cli("pool", "create", "hb", "--path", new_dir(d, "hb"))  # not a network: not sent
    rev = int(etag(d, "/v1/pools/hb").strip('"'))
    assert rev > start
    # The next heartbeat (15 s) carries an id of at least that revision.
    deadline = time.monotonic() + 35
    while (stream.last_id is None or int(stream.last_id) < rev) and time.monotonic() < deadline:
        assert stream._body(), "the stream ended"
        while "\n\n" in stream.text:
            block, stream.text = stream.text.split("\n\n", 1)
            assert "data:" not in block, block  # no event of another kind
            for line in block.split("\n"):
                if line.startswith("id:"):
                    stream.last_id = line[3:].strip()
    assert stream.last_id is not None and int(stream.last_id) >= rev, stream.last_id
    stream.close()
    # Resuming from it: nothing of before, and nothing missed after.
    d.cli("network", "create", "hbnet", "--type", "isolated", "--subnet", "10.77.0.0/24")
    resumed = EventStream(d, "kind=network&follow=false", last_event_id=stream.last_id)
    got = resumed.rest()
    assert got and {data["id"] for _, _, data in got} == {"hbnet"}, got


def etag(d, path):
    conn_status, headers = None, None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(READ_TIMEOUT_S)
    s.connect(d.socket)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    conn_status = int(head[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in head[1:] if ":" in l)}
    assert conn_status == 200, (path, conn_status)
    return headers.get("etag")


def test_etag_and_if_match(fake_daemon):
    d = fake_daemon
    d.cli("vm", "create", "m1", "--memory", "128M")
    tag = etag(d, "/v1/vms/m1")
    assert tag and tag.startswith('"') and tag.endswith('"')
    rev = int(tag.strip('"'))
    # The ETag is the revision of the VM's last change on the event stream.
    vm_events = [i for i, _, data in history(d, "kind=vm") if data["object"]["spec"]["name"] == "m1"]
    assert rev == vm_events[-1]

    stale = f'"{rev - 1}"'
    status, doc = d.request("PATCH", "/v1/vms/m1", {"vcpus": 2}, headers={"If-Match": stale})
    assert status == 412 and doc["error"]["code"] == "precondition-failed", doc
    assert d.vm("m1")["vcpus"] == 1 and etag(d, "/v1/vms/m1") == tag  # unchanged
    status, doc = d.request("POST", "/v1/vms/m1/start", {}, headers={"If-Match": stale})
    assert status == 412 and d.vm("m1")["state"] in ("defined", "stopped")
    status, doc = d.request("DELETE", "/v1/vms/m1", headers={"If-Match": stale})
    assert status == 412 and d.vm("m1")
    status, doc = d.request("PATCH", "/v1/vms/m1", {"vcpus": 2}, headers={"If-Match": "x"})
    assert status == 400 and "If-Match" in doc["error"]["message"]

    status, doc = d.request("PATCH", "/v1/vms/m1", {"vcpus": 2}, headers={"If-Match": tag})
    assert status == 200 and doc["vcpus"] == 2, doc
    new_tag = etag(d, "/v1/vms/m1")
    assert new_tag != tag and int(new_tag.strip('"')) > rev
    # The old tag is stale now; the new one works; "*" matches any.
    status, _ = d.request("PATCH", "/v1/vms/m1", {"vcpus": 1}, headers={"If-Match": tag})
    assert status == 412 and d.vm("m1")["vcpus"] == 2
    status, _ = d.request("PATCH", "/v1/vms/m1", {"vcpus": 1}, headers={"If-Match": "*"})
    assert status == 200
    doc = d.api("POST", "/v1/vms/m1/start", {}, expect=202)
    d.wait_task(doc["task"])
    tag = etag(d, "/v1/vms/m1")
    doc = d.request("POST", "/v1/vms/m1/stop", {"force": True}, headers={"If-Match": tag})
    assert doc[0] == 202, doc

    # Documents stored under one key: pools, volumes, networks.
    d.cli("pool", "create", "p1", "--path", new_dir(d, "p1"))
    ptag = etag(d, "/v1/pools/p1")
    assert ptag
    status, doc = d.request("DELETE", "/v1/pools/p1", headers={"If-Match": '"1"'})
    assert status == 412 and doc["error"]["code"] == "precondition-failed"
    assert d.request("GET", "/v1/pools/p1")[0] == 200
    # A project user's ETag of a pool names its view after the revision
    # (docs/events.md); no write takes one (such a user writes no pool): a
    # view with the pool's very revision is 412 too, nothing changes (before,
    # any 16 hex digits passed and the revision alone was compared).
    status, doc = d.request("DELETE", "/v1/pools/p1", headers={"If-Match": '"1-0123456789abcdef"'})
    assert status == 412 and doc["error"]["code"] == "precondition-failed"
    status, _ = d.request("DELETE", "/v1/pools/p1", headers={"If-Match": '"1-01234567"'})
    assert status == 400
    viewed = ptag[:-1] + '-0123456789abcdef"'
    status, doc = d.request("DELETE", "/v1/pools/p1", headers={"If-Match": viewed})
    assert status == 412 and "0123456789abcdef" in doc["error"]["message"], doc
    assert d.request("GET", "/v1/pools/p1")[0] == 200
    assert d.request("DELETE", "/v1/pools/p1", headers={"If-Match": ptag})[0] == 200
    vtag = etag(d, "/v1/pools/default/volumes/m1-disk0")
    assert vtag
    status, _ = d.request("PATCH", "/v1/pools/default/volumes/m1-disk0", {"shareable": True},
                          headers={"If-Match": '"1"'})
    assert status == 412
    assert d.api("GET", "/v1/pools/default/volumes/m1-disk0")["shareable"] is False
    ntag = etag(d, "/v1/networks/default")
    assert ntag
    status, _ = d.request("DELETE", "/v1/networks/default", headers={"If-Match": '"1"'})
    assert status == 412 and d.request("GET", "/v1/networks/default")[0] == 200


def test_stream_ends_when_vireod_stops(fake_daemon):
    d = fake_daemon
    stream = EventStream(d, timeout=15)
    opened_at(stream)
    d.stop()
    assert stream.next_event() is None  # the end, not a timeout (that raises)
    assert stream.ended_cleanly  # the stream's last chunk, not a cut connection
    stream.close()
    d.start()


def test_stream_ends_when_the_client_goes(fake_daemon):
    """A client that goes away frees its stream: many open-and-close cycles
    stay within the per-client connection limit (64) and vireod answers."""
    d = fake_daemon
    def open_and_close():
        s = EventStream(d)
        try:
            if s.status == 503:  # closes not noticed yet: retried, bounded
                return False
            opened_at(s)
            return True
        finally:
            s.close()
    for _ in range(80):
        wait_until(open_and_close, 10, what="a stream to open")
    wait_until(lambda: d.request("GET", "/v1/host")[0] == 200, 10, what="vireod to answer")
    # And streams still work.
    s = EventStream(d)
    opened_at(s)
    d.cli("vm", "create", "after", "--memory", "128M")
    s.read_until(lambda e: e["kind"] == "vm")
    s.close()


def test_cli_events(fake_daemon):
    d = fake_daemon
    d.cli("vm", "create", "c1", "--memory", "128M")
    vm_id = d.vm("c1")["id"]
    out = d.cli("events", "--kind", "vm").stdout.splitlines()
    assert out and all(line.split()[1] == "vm" for line in out)
    assert any(line.split()[3] == vm_id and "name=c1" in line for line in out)
    revs = [int(line.split()[0]) for line in out]
    assert revs == sorted(revs)
    # --since skips what came before; --object takes a VM's name.
    assert d.cli("events", "--kind", "vm", "--since", str(revs[-1])).stdout == ""
    by_name = d.cli("events", "--object", "c1").stdout.splitlines()
    assert by_name and all(line.split()[3] == vm_id for line in by_name)
    js = [json.loads(l) for l in d.cli("events", "--kind", "pool", "--output", "json")
          .stdout.splitlines()]
    assert js and all(e["kind"] == "pool" and "object" in e for e in js)
    bad = d.cli("events", "--kind", "nope", check=False)
    assert bad.returncode == 1 and "nope" in bad.stderr

    # --follow prints new changes as they happen, until interrupted.
    # (From the last revision seen: a change made before the stream opens is
    # not missed either.)
    # Ctrl-C must reach it: a test run started in the background by a
    # non-interactive shell inherits SIGINT ignored, and the CLI (like any
    # Unix program) keeps an ignored SIGINT ignored.
    p = subprocess.Popen([VIREO, "--socket", d.socket, "events", "--follow", "--kind", "vm",
                          "--since", str(revs[-1])],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        d.cli("vm", "create", "c2", "--memory", "128M")
        c2 = d.vm("c2")["id"]
        os.set_blocking(p.stdout.fileno(), False)
        seen = []

        def got_c2():
            chunk = p.stdout.read()
            if chunk:
                seen.extend(chunk.splitlines())
            return any(c2 in line for line in seen)
        wait_until(got_c2, 20, what="vireo events --follow to print c2's event")
        assert all(line.split()[1] == "vm" for line in seen)
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == 0, p.stderr.read()


def test_cli_waits_on_the_event_stream(fake_daemon):
    """`vireo vm start` reads the task once and follows it on the event
    stream (no polling); with VIREO_WAIT_POLL it polls, and both succeed."""
    d = fake_daemon
    d.cli("vm", "create", "w1", "--memory", "128M")

    def requests_since(mark):
        lines = d.log().splitlines()[mark:]
        return [l.split(" debug ", 1)[1] for l in lines if " debug GET /v1/" in l]

    mark = len(d.log().splitlines())
    out = d.cli("vm", "start", "w1", "--output", "json").stdout
    task = json.loads(out)
    assert task["state"] == "succeeded" and task["kind"] == "start"
    reqs = requests_since(mark)
    assert f"GET /v1/tasks/{task['id']} -> 200" in reqs
    assert "GET /v1/events -> 200" in reqs
    assert reqs.count(f"GET /v1/tasks/{task['id']} -> 200") == 1, reqs
    assert d.vm("w1")["state"] == "running"

    p = subprocess.run([VIREO, "--socket", d.socket, "vm", "stop", "w1", "--force"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "VIREO_WAIT_POLL": "1"})
    assert p.returncode == 0, p.stderr
    assert d.vm("w1")["state"] == "stopped"


@pytest.fixture
def short_history_daemon():
    """A fake-driver vireod whose store keeps its newest 200 changes
    (--event-history; the default of 10000 takes 10000 writes to pass)."""
    d = Daemon(driver="fake", args=["--event-history", "200"])
    try:
        yield d
    finally:
        d.cleanup()


def test_event_history_bounds():
    """--event-history takes a number of changes from 100 up."""
    for bad in ("99", "x", "-5", "200x"):
        p = subprocess.run([VIREOD, "--event-history", bad], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2 and "--event-history" in p.stderr, (bad, p.stderr)


def test_resume_from_a_compacted_revision_is_410(short_history_daemon):
    """The store keeps its newest changes (here 200; compacted every 256
    commits): past that, a resume point before them answers 410 with the
    oldest one that works, which does."""
    d = short_history_daemon
    d.cli("vm", "create", "k1", "--memory", "128M")
    vm_id = d.vm("k1")["id"]
    conn = UnixHTTPConnection(d.socket, timeout=READ_TIMEOUT_S)  # one keep-alive connection
    try:
        for i in range(600):
            conn.request("PATCH", f"/v1/vms/{vm_id}", body=json.dumps({"autostart": i % 2 == 0}),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
    finally:
        conn.close()
    s = EventStream(d, "since=0")
    assert s.status == 410
    body = s.buf
    while len(body) < int(s.headers["content-length"]):
        body += s.sock.recv(65536)
    s.close()
    doc = json.loads(body)
    assert doc["error"]["code"] == "revision-compacted", doc
    oldest = int(s.headers["vireo-oldest-revision"])
    assert oldest > 1
    status, doc = d.request("GET", f"/v1/events?since={oldest - 1}&follow=false")
    assert status == 410
    kept = history(d, "kind=vm", since=oldest)
    assert kept and kept[0][0] > oldest and kept[-1][2]["object"]["spec"]["autostart"] is False
    # The CLI: an explicit --since is refused; without it, what is kept.
    p = d.cli("events", "--since", "0", check=False)
    assert p.returncode == 1 and "revision-compacted" in p.stderr
    out = d.cli("events", "--kind", "vm").stdout.splitlines()
    assert out and int(out[0].split()[0]) > oldest


def test_idle_stream_outlives_the_idle_timeout(fake_daemon):
    """vireod closes connections idle for 30 s, but an open stream sends a
    heartbeat comment every 15 s and stays open: a change made after 35 s
    of silence still arrives."""
    d = fake_daemon
    stream = EventStream(d, "kind=vm", timeout=20)  # more than one heartbeat interval
    opened_at(stream)
    deadline = time.monotonic() + 35
    while time.monotonic() < deadline:
        stream.sock.settimeout(max(0.1, min(20, deadline - time.monotonic())))
        try:
            if not stream._recv():
                break
        except socket.timeout:
            pass
    assert not stream.eof, "the stream was closed while idle"
    stream.sock.settimeout(READ_TIMEOUT_S)
    d.cli("vm", "create", "late", "--memory", "128M")
    late = d.vm("late")["id"]
    stream.read_until(lambda e: e["id"] == late)
    stream.close()
    assert sum(c == ": keepalive" for c in stream.comments) >= 2, stream.comments
