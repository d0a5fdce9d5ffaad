"""Contract test: api/openapi.yaml against vireod.

1. The (METHOD, path) pairs of the document equal `vireod --list-routes`.
2. A real vireod (fake driver, temporary state and run dirs, no QEMU) is
   driven through every route and the documented error cases, storage
   included (pools, volumes, upload and download, image import and delete,
   VM disks and templates), virtual networks (networks of every type,
   VM NICs) and VM snapshots (the fake driver takes a running VM's snapshots
   without touching its disks; a stopped VM's are made by qemu-img in its
   qcow2 disk, which the test reads back). vireod makes bridges, links, nftables tables and dnsmasq for
   its networks, so it runs in a network namespace of the test's own
   (`ip netns`); its Unix socket, a file, stays reachable from outside. At
   the end vireod and the dnsmasq processes it started are killed by PID
   and the namespace is deleted, which removes every link it made.
   Each answer's status must be one the document lists for the operation (and
   the one the test expects), and its body must validate against the schema
   the document gives for that status and content type.

Needs root (network namespaces), the built daemon
($VIREO_BUILD/src/daemon/vireod, default build/), PyYAML, and on PATH
qemu-img (vireod runs it for every volume; the test uses it to make a vmdk
to upload and to read what it downloads), ip (iproute2), nft and dnsmasq.
Only the standard library and yaml are used.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "api" / "openapi.yaml"
ERRORS_C = ROOT / "src" / "util" / "errors.c"
BUILD = Path(os.environ.get("VIREO_BUILD", ROOT / "build"))
VIREOD = BUILD / "src" / "daemon" / "vireod"

WAIT_S = 10  # bound of every wait: daemon start-up, a task, an HTTP answer
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
RUNNING_ONLY = {"pid", "accel_active", "started_at", "uptime_s"}
ACTIVE_STATES = {"starting", "running", "paused", "stopping"}


def require_vireod():
    if not VIREOD.is_file():
        pytest.fail(f"{VIREOD} does not exist: build vireo first (make build)")


# ---- the document -----------------------------------------------------------


@pytest.fixture(scope="module")
def spec():
    with open(SPEC_PATH) as f:
        return yaml.safe_load(f)


def resolve(doc, node):
    """Follows local $refs ('#/components/...') to the node they name."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local $refs are supported: {ref}"
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def documented_routes(doc):
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, item, op


def takes_raw_body(doc, op):
    """True for an operation whose body is raw bytes, not JSON (the upload):
    vireod checks neither its size nor its Content-Type."""
    body = resolve(doc, op.get("requestBody", {}))
    return "application/octet-stream" in body.get("content", {})


def is_binary(schema):
    return schema.get("type") == "string" and schema.get("format") == "binary"


# ---- a validator for the JSON Schema subset the document uses ----------------

TYPE_CHECKS = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}
# Keywords that constrain values and that schema_errors() implements; any other
# constraining keyword in the document fails test_document_is_consistent, so
# the document cannot outgrow this validator unnoticed.
CHECKED = {"$ref", "type", "properties", "required", "additionalProperties", "enum",
           "items", "nullable", "minimum", "maximum", "pattern", "minProperties", "oneOf",
           "minItems", "maxItems", "uniqueItems"}
ANNOTATIONS = {"description", "example", "default", "format", "title"}


def schema_errors(doc, schema, value, where="$"):
    """Returns what is wrong with value under schema, as 'where: problem' lines."""
    if "$ref" in schema:
        return schema_errors(doc, resolve(doc, schema), value, where)
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null is not allowed"]
    kind = schema.get("type")
    if kind and not TYPE_CHECKS[kind](value):
        return [f"{where}: expected {kind}, got {json.dumps(value)[:80]}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} is below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} is above the maximum {schema['maximum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: required key '{key}' is missing")
        if len(value) < schema.get("minProperties", 0):
            errors.append(f"{where}: needs at least {schema['minProperties']} keys")
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(doc, properties[key], item, f"{where}.{key}")
            elif extra is False:
                errors.append(f"{where}: key '{key}' is not in the document")
            elif isinstance(extra, dict):
                errors += schema_errors(doc, extra, item, f"{where}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: needs at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where}: has more than {schema['maxItems']} items")
        if schema.get("uniqueItems"):
            seen = [json.dumps(item, sort_keys=True) for item in value]
            if len(set(seen)) != len(seen):
                errors.append(f"{where}: items are not unique")
        for i, item in enumerate(value):
            if "items" in schema:
                errors += schema_errors(doc, schema["items"], item, f"{where}[{i}]")
    if "oneOf" in schema:
        matching = [i for i, sub in enumerate(schema["oneOf"])
                    if not schema_errors(doc, sub, value, where)]
        if len(matching) != 1:
            errors.append(f"{where}: matches {len(matching)} of the oneOf schemas, not exactly 1")
    return errors


def walk(node, where="$"):
    """Yields (where, node) for every dict in a YAML tree."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{where}[{i}]")


def all_schemas(doc):
    """Yields (where, schema) for every schema in the document, nested ones too."""
    roots = [(f"$/components/schemas/{name}", s) for name, s in doc["components"]["schemas"].items()]
    roots += [(where, node["schema"]) for where, node in walk(doc["paths"], "$/paths")
              if isinstance(node.get("schema"), dict)]
    roots += [(where, node["schema"]) for where, node in walk(doc["components"], "$/components")
              if isinstance(node.get("schema"), dict) and "/schemas/" not in where]
    stack = list(roots)
    while stack:
        where, schema = stack.pop()
        yield where, schema
        for key in ("properties",):
            for name, sub in schema.get(key, {}).items():
                stack.append((f"{where}/{name}", sub))
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                stack.append((f"{where}/{key}", schema[key]))
        for i, sub in enumerate(schema.get("oneOf", [])):
            stack.append((f"{where}/oneOf[{i}]", sub))


# ---- talking to vireod ----------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over an AF_UNIX stream socket."""

    def __init__(self, socket_path, timeout=WAIT_S):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


@dataclass
class Reply:
    status: int
    headers: dict  # lower-case names
    body: bytes
    value: object = None  # the parsed body (JSON value or text), once checked

    @property
    def media_type(self):
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class Api:
    """Sends requests to vireod and checks every answer against the document."""

    socket_path: str
    doc: dict
    seen: set = field(default_factory=set)  # (METHOD, path template) exercised

    def send(self, method, path, body=None, headers=None):
        conn = UnixHTTPConnection(self.socket_path)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    def template_for(self, path):
        """The document's path template that path matches, or None."""
        path = path.split("?", 1)[0]
        for template in self.doc["paths"]:
            parts = re.split(r"(\{[^}/]+\})", template)
            regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
            if re.fullmatch(regex, path):
                return template
        return None

    def call(self, method, path, body=None, *, expect, code=None, raw=None, headers=None):
        """Sends a request to a documented operation; checks status and body.

        body is sent as JSON; raw is sent as is (with the given headers).
        expect is the status, or a tuple of the statuses allowed."""
        allowed = expect if isinstance(expect, tuple) else (expect,)
        headers = dict(headers or {})
        if body is not None:
            raw = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        template = self.template_for(path)
        op = self.doc["paths"].get(template, {}).get(method.lower())
        assert op is not None, f"{method} {path}: no such operation in the document"
        if body is not None and any(200 <= e < 300 for e in allowed) and "requestBody" in op:
            schema = resolve(self.doc, op["requestBody"])["content"]["application/json"]["schema"]
            errors = schema_errors(self.doc, schema, body)
            assert not errors, f"{method} {path}: the test sends a body the document refuses: {errors}"

        reply = self.send(method, path, raw, headers)
        self.seen.add((method, template))
        assert reply.status in allowed, (
            f"{method} {path}: expected {expect}, got {reply.status}: {reply.body[:300]!r}")
        responses = op["responses"]
        assert str(reply.status) in responses, (
            f"{method} {template}: status {reply.status} is not in the document "
            f"(documented: {sorted(responses)})")
        self.check(resolve(self.doc, responses[str(reply.status)]), reply, f"{method} {path}")
        if code is not None and reply.status >= 400:
            assert reply.value["error"]["code"] == code, reply.value
        return reply

    def call_unrouted(self, method, path, *, expect, response):
        """For a request no operation covers (unknown path, wrong method):
        checks the answer against components.responses[response]."""
        reply = self.send(method, path)
        assert reply.status == expect, (
            f"{method} {path}: expected {expect}, got {reply.status}: {reply.body[:300]!r}")
        self.check(self.doc["components"]["responses"][response], reply, f"{method} {path}")
        return reply

    def check(self, response, reply, what):
        """Checks reply against a response object of the document."""
        for name, header in response.get("headers", {}).items():
            header = resolve(self.doc, header)
            value = reply.headers.get(name.lower())
            if value is None:
                assert not header.get("required"), f"{what}: header {name} is missing"
                continue
            errors = schema_errors(self.doc, header["schema"], value, name)
            assert not errors, f"{what}: header {name}: {errors}"
        content = response.get("content")
        if not content:
            assert reply.body == b"", f"{what}: the document declares no body: {reply.body[:200]!r}"
            return
        assert reply.media_type in content, (
            f"{what}: Content-Type {reply.headers.get('content-type')!r}, "
            f"the document says {sorted(content)}")
        schema = content[reply.media_type]["schema"]
        if is_binary(schema):
            reply.value = reply.body  # any bytes
            return
        if reply.media_type == "application/json":
            reply.value = json.loads(reply.body)
        else:
            reply.value = reply.body.decode("utf-8", errors="replace")
        errors = schema_errors(self.doc, schema, reply.value)
        assert not errors, (f"{what} -> {reply.status}: the body does not match the document:\n  "
                            + "\n  ".join(errors) + f"\nbody: {reply.body[:600]!r}")
        if reply.status >= 400:
            status_of = self.doc["components"]["schemas"]["ErrorCode"]["x-http-status"]
            error_code = reply.value["error"]["code"]
            assert status_of[error_code] == reply.status, (
                f"{what}: code {error_code} comes with HTTP {reply.status}, "
                f"the document says {status_of[error_code]}")

    def wait_task(self, task, want="succeeded"):
        """Polls a task until it finishes (at most WAIT_S); returns it."""
        deadline = time.monotonic() + WAIT_S
        while True:
            t = self.call("GET", f"/v1/tasks/{task['id']}", expect=200).value
            if t["state"] in ("succeeded", "failed"):
                break
            assert time.monotonic() < deadline, (
                f"task {t['kind']} {t['target']} is still {t['state']} after {WAIT_S} s")
            time.sleep(0.05)
        assert t["state"] == want, f"task {t['kind']} {t['target']}: {t['state']}: {t['error']}"
        assert t["finished_at"] is not None
        if want == "succeeded":
            assert t["error"] is None and t["progress"] == 100, t
        else:
            assert t["error"] is not None, t
        return t

    def act(self, vm, action, body=None):
        """POST /v1/vms/{vm}/{action}, waits for its task; returns the VM after."""
        task = self.call("POST", f"/v1/vms/{vm}/{action}", body, expect=202).value["task"]
        assert task["kind"] == action and task["target"] == vm, task
        self.wait_task(task)
        return self.call("GET", f"/v1/vms/{vm}", expect=200).value

    def create(self, name, **fields):
        reply = self.call("POST", "/v1/vms", {"name": name, **fields}, expect=202).value
        assert reply["vm"]["name"] == name and reply["vm"]["state"] == "defined", reply
        assert reply["task"]["kind"] == "create" and reply["task"]["target"] == name, reply
        self.wait_task(reply["task"])
        return reply["vm"]

    def task_ok(self, method, path, body=None, *, kind, target):
        """An operation that answers 202 with a task: checks the task's kind
        and target, waits for it to succeed; returns the answer."""
        reply = self.call(method, path, body, expect=202).value
        assert (reply["task"]["kind"], reply["task"]["target"]) == (kind, target), reply["task"]
        self.wait_task(reply["task"])
        return reply

    def volume(self, key):
        return self.call("GET", f"/v1/pools/{key.replace('/', '/volumes/', 1)}", expect=200).value

    def new_volume(self, pool, body, *, kind="volume-create"):
        """POST /v1/pools/{pool}/volumes; waits for the task; returns the volume."""
        reply = self.call("POST", f"/v1/pools/{pool}/volumes", body, expect=202).value
        assert reply["volume"]["state"] == "creating", reply
        assert reply["volume"]["key"] == f"{pool}/{body['name']}", reply
        assert (reply["task"]["kind"], reply["task"]["target"]) == (kind, body["name"])
        self.wait_task(reply["task"])
        volume = self.volume(f"{pool}/{body['name']}")
        assert volume["state"] == "ready", volume
        return volume

    def delete_volume(self, key):
        pool, name = key.split("/")
        task = self.call("DELETE", f"/v1/pools/{pool}/volumes/{name}", expect=202).value["task"]
        assert (task["kind"], task["target"]) == ("volume-delete", name), task
        self.wait_task(task)
        self.call("GET", f"/v1/pools/{pool}/volumes/{name}", expect=404, code="not-found")

    def delete_vm(self, name, query=""):
        task = self.call("DELETE", f"/v1/vms/{name}{query}", expect=202).value["task"]
        self.wait_task(task)
        self.call("GET", f"/v1/vms/{name}", expect=404, code="not-found")

    def image(self, name):
        """The image from GET /v1/images, or None."""
        images = self.call("GET", "/v1/images", expect=200).value["images"]
        return next((i for i in images if i["name"] == name), None)


def assert_vm_state(vm, state):
    """The document's rules on which keys a VM has in which state."""
    assert vm["state"] == state, vm
    if state in ("running", "paused"):
        assert RUNNING_ONLY <= vm.keys(), f"{state} VM lacks {RUNNING_ONLY - vm.keys()}"
    else:
        assert not RUNNING_ONLY & vm.keys(), f"{state} VM has {RUNNING_ONLY & vm.keys()}"
    if state in ACTIVE_STATES:
        assert "exit_reason" not in vm, vm


# ---- the daemon ---------------------------------------------------------------------


def make_fake_image(state_dir):
    image = state_dir / "images" / "default"
    image.mkdir(parents=True)
    (image / "image.json").write_text(json.dumps(
        {"disk": "disk.raw", "format": "raw", "kernel": "vmlinux", "cmdline": "console=ttyS0"}))
    with open(image / "disk.raw", "wb") as f:
        f.truncate(64 << 20)  # sparse
    (image / "vmlinux").touch()


def qemu_img(*args):
    return subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True,
                          timeout=WAIT_S, check=True).stdout


def stop_process(proc):
    if proc.poll() is None:
        proc.terminate()  # SIGTERM to proc.pid
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def pid_alive(pid):
    """True while pid runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(predicate, what):
    """Polls predicate until it returns a truthy value, at most WAIT_S; returns it."""
    deadline = time.monotonic() + WAIT_S
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not so after {WAIT_S} s"
        time.sleep(0.05)


def kill_pid(pid):
    """SIGTERM, then SIGKILL; each wait bounded."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not pid_alive(pid):
            return


def dnsmasqs_of(run_dir):
    """PIDs of the dnsmasq processes vireod started for the networks under
    run_dir: their --conf-file is RUN-DIR/networks/NAME/dnsmasq.conf."""
    prefix = f"--conf-file={run_dir}/networks/".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"dnsmasq" and any(
                a.startswith(prefix) for a in argv):
            pids.append(int(entry))
    return pids


def ip(*args, check=True):
    """Runs ip(8), bounded."""
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=WAIT_S,
                          check=check)


def link_exists(netns, name):
    return ip("-n", netns, "link", "show", "dev", name, check=False).returncode == 0


def check_default_network(socket_path, run_dir):
    """Fails early, saying why, unless vireod's default network is up with a
    dnsmasq that stays up (it cannot start when, for instance, the host is
    out of inotify instances); every VM start needs it."""
    def get_default():
        conn = UnixHTTPConnection(socket_path)
        try:
            conn.request("GET", "/v1/networks/default")
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    deadline = time.monotonic() + WAIT_S
    while True:
        status, net = get_default()
        if status != 200:
            pytest.fail(f"vireod has no default network: {status} {net}")
        pid = net["dnsmasq_pid"]
        if net["state"] == "active" and pid and pid_alive(pid):
            time.sleep(0.5)  # still the same one, still running?
            status, again = get_default()
            if again["state"] == "active" and again["dnsmasq_pid"] == pid and pid_alive(pid):
                return
        if net["state"] == "error" or time.monotonic() > deadline:
            log = run_dir / "networks" / "default" / "dnsmasq.log"
            tail = log.read_text(errors="replace")[-600:] if log.exists() else "(no log)"
            pytest.fail(f"vireod's default network is not up: {net['error']}\n"
                        f"dnsmasq.log:\n{tail}")
        time.sleep(0.05)


# Links the test makes in the namespace for vireod's bridge and vlan networks.
HOST_BRIDGE = "hostbr0"  # a host bridge vireo did not make
UPLINK, UPLINK_PEER = "vup0", "vup1"  # a veth pair: a VLAN uplink, and a link that is no bridge


@pytest.fixture(scope="module")
def netns():
    """A network namespace of the test's own, loopback up, with a host bridge
    and a veth pair; deleted at the end (with every link in it)."""
    if os.geteuid() != 0:
        pytest.fail("the contract test needs root: vireod runs in a network namespace")
    for tool in ("ip", "nft", "dnsmasq"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not on PATH (vireod needs it for its default network)")
    name = f"vireo-c-{uuid.uuid4().hex[:10]}"
    ip("netns", "add", name)
    try:
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "link", "add", HOST_BRIDGE, "type", "bridge")
        ip("-n", name, "link", "add", UPLINK, "type", "veth", "peer", "name", UPLINK_PEER)
        yield name
    finally:
        ip("netns", "delete", name, check=False)


@pytest.fixture(scope="module")
def vireod(netns):
    """A vireod with the fake driver in the test's namespace; yields its socket path."""
    require_vireod()
    if not shutil.which("qemu-img"):
        pytest.fail("qemu-img is not on PATH (the create task needs it)")
    # Under /tmp, not $TMPDIR: a Unix socket path must stay short (108 bytes).
    top = Path(tempfile.mkdtemp(prefix="vireo-contract-", dir="/tmp"))
    proc = None
    log_path = top / "vireod.log"
    try:
        make_fake_image(top / "state")
        sock = top / "run" / "vireod.sock"
        env = {k: v for k, v in os.environ.items() if k != "VIREO_FAKE_FAULTS"}
        with open(log_path, "wb") as log:
            # ip netns exec execs vireod in place: proc.pid is vireod's PID.
            proc = subprocess.Popen(
                ["ip", "netns", "exec", netns, str(VIREOD), "--driver", "fake",
                 "--state-dir", str(top / "state"), "--run-dir", str(top / "run"),
                 "--socket", str(sock)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + WAIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vireod exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(1)
                    s.connect(str(sock))
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"vireod did not listen within {WAIT_S} s:\n{log_path.read_text()}")
                time.sleep(0.05)
        check_default_network(str(sock), top / "run")
        yield str(sock)
    finally:
        if proc is not None:
            stop_process(proc)
        # vireod leaves its networks' dnsmasq running when it stops (by design):
        # end the ones it started, by PID, before the namespace goes.
        for pid in dnsmasqs_of(top / "run"):
            kill_pid(pid)
        if log_path.exists():
            print("---- vireod log ----\n" + log_path.read_text(errors="replace")[-8000:])
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def api(vireod, spec):
    return Api(vireod, spec)


@pytest.fixture(scope="module")
def state_dir(vireod):
    return Path(vireod).parents[1] / "state"


@pytest.fixture(scope="module")
def run_dir(vireod):
    return Path(vireod).parent


@pytest.fixture(scope="module")
def scratch(vireod):
    """A directory for files the test makes (removed with the daemon's)."""
    path = Path(vireod).parents[1] / "scratch"
    path.mkdir(exist_ok=True)
    return path


MiB = 1 << 20


# ---- the document itself --------------------------------------------------------------


def test_routes_match_list_routes(spec):
    require_vireod()
    out = subprocess.run([str(VIREOD), "--list-routes"], capture_output=True, text=True,
                         timeout=WAIT_S, check=True).stdout
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert all(len(parts) == 2 for parts in lines), out
    served = {(method, path) for method, path in lines}
    assert len(served) == len(lines), f"duplicate routes in --list-routes:\n{out}"
    documented = documented_routes(spec)
    assert not served - documented, (
        f"routes vireod serves that api/openapi.yaml lacks: {sorted(served - documented)}")
    assert not documented - served, (
        f"routes api/openapi.yaml documents that vireod does not serve: "
        f"{sorted(documented - served)}")


def test_document_has_no_duplicate_keys():
    """A key twice in one mapping: YAML loaders keep the last one silently
    (VmCreate's networks once lost its pattern to macs, which got the
    network name's)."""
    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader, node):
        keys = [loader.construct_object(k) for k, _ in node.value]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        assert not twice, f"line {node.start_mark.line + 1}: keys given twice: {twice}"
        return loader.construct_mapping(node)

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    with open(SPEC_PATH) as f:
        yaml.load(f, Loader=Strict)


def test_document_is_consistent(spec):
    assert spec["openapi"] == "3.0.3"
    for where, node in walk(spec):
        if "$ref" in node:
            try:
                resolve(spec, node)
            except (KeyError, TypeError):
                pytest.fail(f"{where}: $ref {node['$ref']} does not resolve")

    for where, schema in all_schemas(spec):
        schema = resolve(spec, schema)
        unknown = {k for k in schema if k not in CHECKED | ANNOTATIONS and not k.startswith("x-")}
        assert not unknown, f"{where}: the test's validator does not implement {sorted(unknown)}"
        if "pattern" in schema:
            re.compile(schema["pattern"])
        if "type" in schema:
            assert schema["type"] in TYPE_CHECKS, f"{where}: type {schema['type']}"

    for method, path, item, op in operations(spec):
        what = f"{method} {path}"
        params = [resolve(spec, p) for p in item.get("parameters", []) + op.get("parameters", [])]
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"\{([^}]+)\}", path)), f"{what}: path parameters"
        assert all(p["required"] for p in params if p["in"] == "path"), what
        statuses = set(op["responses"])
        assert statuses & {"101", "200", "201", "202"}, f"{what}: no success response"
        if takes_raw_body(spec, op):
            assert "400" in statuses and not statuses & {"413", "415"}, (
                f"{what}: a raw body is neither size- nor type-checked")
        else:
            assert {"400", "413", "415"} <= statuses, f"{what}: every request may carry a bad body"
        if "{" in path:
            assert "404" in statuses, f"{what}: an unknown {{param}} answers 404"
        for status, response in op["responses"].items():
            response = resolve(spec, response)
            assert response.get("description"), f"{what} {status}: no description"
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, f"{what} {status}"

    # VmDetail (GET /v1/vms/{vm}) is VM with richer NICs, two live numbers
    # read from QEMU and what the guest agent says; nothing else may differ
    schemas = spec["components"]["schemas"]
    vm, detail = schemas["VM"], schemas["VmDetail"]
    live = ("vcpus_plugged", "memory_actual_mib", "guest")
    assert all(k in detail["properties"] and k not in detail["required"] for k in live)
    assert {k: v for k, v in vm.items() if k != "description"} == {
        **{k: v for k, v in detail.items() if k != "description"},
        "properties": {**{k: v for k, v in detail["properties"].items() if k not in live},
                       "nics": vm["properties"]["nics"]}}, (
        "VM and VmDetail differ in more than their nics and live numbers")
    assert detail["properties"]["nics"]["items"] == {"$ref": "#/components/schemas/VmNic"}

    code = spec["components"]["schemas"]["ErrorCode"]
    assert set(code["enum"]) == set(code["x-http-status"]), "ErrorCode enum vs x-http-status"
    table = dict(re.findall(r'\[VO_ERR_\w+\]\s*=\s*\{\s*"([a-z-]+)",\s*(\d+)\s*\}',
                            ERRORS_C.read_text()))
    assert table, f"no error table found in {ERRORS_C}"
    assert {k: int(v) for k, v in table.items()} == code["x-http-status"], (
        "ErrorCode in api/openapi.yaml differs from src/util/errors.c")


# ---- the daemon against the document -------------------------------------------------


def test_host_and_images(api):
    host = api.call("GET", "/v1/host", expect=200).value
    assert host["driver"] == "fake"
    assert host["kvm_usable"] is False and host["kvm_reason"]
    hosts = api.call("GET", "/v1/hosts", expect=200).value["hosts"]
    assert [h["id"] for h in hosts] == [host["id"]]
    assert api.call("GET", f"/v1/hosts/{host['name']}", expect=200).value["id"] == host["id"]
    api.call("GET", "/v1/hosts/nope", expect=404, code="not-found")

    images = api.call("GET", "/v1/images", expect=200).value["images"]
    assert [i["name"] for i in images] == ["default"]
    image = images[0]
    assert image["format"] == "raw" and image["size_bytes"] == 64 << 20
    assert image["disk"].endswith("/images/default/disk.raw")
    assert image["kernel"].endswith("/images/default/vmlinux")
    assert image["initrd"] is None and image["cmdline"] == "console=ttyS0"
    assert image["used_by"] == 0
    assert api.call("GET", "/v1/images/default", expect=200).value == image


def test_metrics_routes(api):
    host = api.call("GET", "/v1/host", expect=200).value
    doc = api.call("GET", f"/v1/hosts/{host['name']}/metrics?range=1d", expect=200).value
    assert doc["id"] == host["id"] and doc["step"] == 60
    api.call("GET", f"/v1/hosts/{host['name']}/metrics?range=2h", expect=400,
             code="invalid-argument")
    api.call("GET", "/v1/hosts/nope/metrics", expect=404, code="not-found")
    api.create("metrics1")
    doc = api.call("GET", "/v1/vms/metrics1/metrics", expect=200).value
    assert doc["range"] == "1h"
    api.call("GET", "/v1/vms/metrics1/metrics?range=1w", expect=400, code="invalid-argument")
    api.call("GET", "/v1/vms/nope/metrics", expect=404, code="not-found")
    reply = api.call("GET", "/metrics", expect=200)
    assert b"# TYPE vireo_host_cpu_ratio gauge" in reply.body
    api.delete_vm("metrics1")


def test_cluster_routes_standalone(api):
    # A standalone vireod: the cluster routes answer what a host outside a
    # cluster can (forming one for real: tests/e2e/test_cluster_formation.py).
    assert api.call("GET", "/v1/cluster", expect=200).value == {"cluster": None}
    api.call("GET", "/v1/cluster/ca", expect=404, code="not-found")
    api.call("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=409, code="invalid-state")
    api.call("POST", "/v1/cluster/tokens", {"ttl_s": 5}, expect=(400, 409))
    api.call("POST", "/v1/cluster/leave", {}, expect=409, code="invalid-state")
    # DRS balances the hosts of a cluster (docs/drs.md; test_drs.py in one).
    api.call("GET", "/v1/cluster/drs", expect=409, code="invalid-state")
    api.call("PUT", "/v1/cluster/drs", {"mode": "auto"}, expect=409, code="invalid-state")
    api.call("GET", "/v1/cluster/recommendations", expect=409, code="invalid-state")
    # HA's restart limit: a standalone host keeps its own (cluster init
    # carries it into the cluster; docs/ha.md, "The restart limit").
    assert api.call("GET", "/v1/cluster/ha", expect=200).value == {"max_restarts": 3,
                                                                    "window_minutes": 10}
    assert api.call("PATCH", "/v1/cluster/ha", {"max_restarts": 5}, expect=200).value == {
        "max_restarts": 5, "window_minutes": 10}
    api.call("PATCH", "/v1/cluster/ha", {"window_minutes": 0}, expect=400,
             code="invalid-argument")
    api.call("PATCH", "/v1/cluster/ha", {"max_restarts": 3, "window_minutes": 10}, expect=200)
    api.call("POST", "/v1/cluster/recommendations/x/apply", {}, expect=409,
             code="invalid-state")
    api.call("DELETE", "/v1/hosts/nope", expect=409, code="invalid-state")
    api.call("POST", "/v1/cluster/init", {"address": "192.0.2.77"}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/cluster/join", {"token": "not-a-token"}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/cluster/join-request", {"cluster": "x"}, expect=409,
             code="invalid-state")
    # Live migration: no such VM; the hosts' own routes refused on the Unix
    # socket (real migrations: tests/e2e/test_migrate.py).
    api.call("POST", "/v1/vms/nope/migrate", {"to": "h2"}, expect=404, code="not-found")
    mid = "/v1/migrations/incoming/00000000-0000-4000-8000-000000000000"
    api.call("POST", "/v1/migrations/incoming", {"id": "x"}, expect=401,
             code="unauthenticated")
    api.call("POST", f"{mid}/digest", {}, expect=401, code="unauthenticated")
    api.call("POST", f"{mid}/commit", {"rev": 1}, expect=401, code="unauthenticated")
    api.call("POST", f"{mid}/alive", {}, expect=401, code="unauthenticated")
    api.call("POST", f"{mid}/recover", {"vm": "x"}, expect=401, code="unauthenticated")
    api.call("POST", "/v1/migrations/outgoing/x/resume", {}, expect=401,
             code="unauthenticated")
    api.call("GET", "/v1/migrations/outgoing/x/source", expect=401, code="unauthenticated")
    # vm migrate --resume: nothing kept anywhere (409); with another field, 400.
    api.call("POST", "/v1/vms/nope/migrate", {"resume": True}, expect=409,
             code="invalid-state")
    api.call("POST", "/v1/vms/nope/migrate", {"resume": True, "to": "h2"}, expect=400,
             code="invalid-argument")
    # resume false (its default) is a migration as without it: the VM is looked up.
    api.call("POST", "/v1/vms/nope/migrate", {"resume": False, "to": "h2"}, expect=404,
             code="not-found")
    api.call("DELETE", mid, expect=401, code="unauthenticated")
    # Cold move: the same (real moves: tests/e2e/test_vm_move.py).
    api.call("POST", "/v1/vms/nope/move", {"to": "h2"}, expect=404, code="not-found")
    api.call("POST", "/v1/moves/incoming", {"vm": "x"}, expect=401, code="unauthenticated")
    api.call("GET", "/v1/moves/outgoing/x/volumes/default.y", expect=401,
             code="unauthenticated")
    api.call("POST", "/v1/migrations/moved", {"vm": "x"}, expect=401, code="unauthenticated")
    # Maintenance and evacuation (real ones: tests/e2e/test_maintenance.py):
    # a standalone host has nowhere to move its VMs; off is a no-op.
    me = api.call("GET", "/v1/host", expect=200).value["name"]
    api.call("POST", "/v1/hosts/nope/maintenance", {"on": True}, expect=404, code="not-found")
    api.call("POST", f"/v1/hosts/{me}/maintenance", {"on": "yes"}, expect=400,
             code="invalid-argument")
    off = api.call("POST", f"/v1/hosts/{me}/maintenance", {"on": False}, expect=200).value
    assert off["maintenance"] is False and off["changed"] is False and off["task"] is None
    api.call("POST", "/v1/hosts/nope/evacuate", {}, expect=404, code="not-found")
    api.call("POST", f"/v1/hosts/{me}/evacuate", {}, expect=202)


def test_groups_and_placement(api):
    # Placement groups and the policy on a standalone vireod (a cluster of
    # one; several hosts: tests/e2e/test_cluster_placement.py).
    g = api.call("POST", "/v1/groups", {"name": "grp1", "policy": "spread"}, expect=201).value
    assert g["members"] == []
    api.call("POST", "/v1/groups", {"name": "grp1", "policy": "spread"}, expect=409,
             code="already-exists")
    api.call("POST", "/v1/groups", {"name": "grp2", "policy": "nope"}, expect=400,
             code="invalid-argument")
    vm = api.create("grouped1", memory_mib=64, group="grp1")
    assert vm["group"] == "grp1"
    api.call("POST", "/v1/vms", {"name": "grouped2", "group": "missing"}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/vms", {"name": "grouped2", "host": "elsewhere"}, expect=400,
             code="invalid-argument")
    assert [m["name"] for m in api.call("GET", "/v1/groups/grp1", expect=200).value["members"]] \
        == ["grouped1"]
    # Where it would migrate: a standalone host has no other host (409,
    # each host's reason in the error); a real choice: test_migrate_target.py.
    err = api.call("POST", "/v1/vms/grouped1/migrate-target", {}, expect=409,
                   code="invalid-state").value["error"]
    assert [h["reason"] for h in err["hosts"]] == ["excluded (the host the VM moves from)"]
    assert err["message"].startswith("VM grouped1 has no host to move to (no host fits: ")
    api.call("POST", "/v1/vms/grouped1/migrate-target", {"to": "x"}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/vms/nope/migrate-target", {}, expect=404, code="not-found")
    assert api.call("GET", "/v1/groups", expect=200).value["groups"][0]["members"] == 1
    api.call("GET", "/v1/groups/nope", expect=404, code="not-found")
    api.call("DELETE", "/v1/groups/grp1", expect=409, code="invalid-state")
    api.delete_vm("grouped1")
    api.call("DELETE", "/v1/groups/grp1", expect=200)
    assert api.call("GET", "/v1/placement", expect=200).value == {"policy": "spread"}
    api.call("PUT", "/v1/placement", {"policy": "pack"}, expect=200)
    api.call("PUT", "/v1/placement", {"policy": "nope"}, expect=400, code="invalid-argument")
    api.call("PUT", "/v1/placement", {"policy": "spread"}, expect=200)


def test_projects(api):
    # Projects and quotas (docs/projects.md; races: tests/e2e/test_projects.py).
    p = api.call("POST", "/v1/projects", {"name": "prj1", "quotas": {"vms": 1}},
                 expect=201).value
    assert p["quotas"] == {"vms": 1} and p["usage"]["vms"] == 0
    api.call("POST", "/v1/projects", {"name": "prj1"}, expect=409, code="already-exists")
    api.call("POST", "/v1/projects", {"name": "prj2", "quotas": {"x": 1}}, expect=400,
             code="invalid-argument")
    vm = api.create("inprj1", memory_mib=64, project="prj1")
    assert vm["project"] == "prj1"
    api.call("POST", "/v1/vms", {"name": "inprj2", "memory_mib": 64, "project": "prj1"},
             expect=409, code="quota-exceeded")
    assert [v["name"] for v in api.call("GET", "/v1/vms?project=prj1", expect=200).value["vms"]] \
        == ["inprj1"]
    assert api.call("GET", "/v1/projects/prj1", expect=200).value["vms"][0]["name"] == "inprj1"
    assert "prj1" in [x["name"] for x in api.call("GET", "/v1/projects", expect=200).value[
        "projects"]]
    api.call("PATCH", "/v1/projects/prj1", {"quotas": {"vms": None}}, expect=200)
    api.call("PATCH", "/v1/projects/nope", {"quotas": {}}, expect=404, code="not-found")
    api.call("PATCH", "/v1/vms/inprj1", {"project": "default"}, expect=200)
    api.call("PATCH", "/v1/vms/inprj1", {"project": "nope"}, expect=400, code="invalid-argument")
    api.call("GET", "/v1/projects/nope", expect=404, code="not-found")
    api.call("PATCH", "/v1/vms/inprj1", {"project": "prj1"}, expect=200)
    api.call("DELETE", "/v1/projects/prj1", expect=409, code="invalid-state")
    api.delete_vm("inprj1")
    api.call("POST", "/v1/users", {"name": "prjuser", "role": "none",
                                   "password": "a long password"}, expect=201)
    u = api.call("POST", "/v1/users/prjuser/grants", {"project": "prj1", "role": "viewer"},
                 expect=200).value
    assert u["grants"] == {"prj1": "viewer"} and u["role"] == "none"
    api.call("DELETE", "/v1/users/prjuser/grants/prj1", expect=200)
    api.call("DELETE", "/v1/users/prjuser/grants/prj1", expect=404, code="not-found")
    api.call("DELETE", "/v1/users/prjuser", expect=200)
    api.call("DELETE", "/v1/projects/prj1", expect=200)


def test_vm_lifecycle(api):
    vm = api.create("life1", memory_mib=256)
    vm_id = vm["id"]

    names = [v["name"] for v in api.call("GET", "/v1/vms", expect=200).value["vms"]]
    summary = api.call("GET", "/v1/vms?view=summary", expect=200).value["vms"]
    assert [v["name"] for v in summary] == names and "disks" not in summary[0]
    api.call("GET", "/v1/vms?view=bogus", expect=400, code="invalid-argument")
    assert "life1" in names and names == sorted(names)
    vm = api.call("GET", "/v1/vms/life1", expect=200).value
    assert vm == api.call("GET", f"/v1/vms/{vm_id}", expect=200).value
    assert_vm_state(vm, "defined")
    assert vm["memory_mib"] == 256 and vm["vcpus"] == 1 and vm["accel"] == "auto"
    assert vm["image"] == "default" and not vm["autostart"]
    assert "exit_reason" not in vm

    assert vm["max_vcpus"] == 1 and vm["max_memory_mib"] == 256  # no hot-plug by default
    vm = api.call("PATCH", "/v1/vms/life1", {"memory_mib": 384, "autostart": True},
                  expect=200).value
    assert vm["memory_mib"] == 384 and vm["autostart"] is True
    assert vm["max_memory_mib"] == 384  # a stopped VM's maximum follows
    vm = api.call("PATCH", "/v1/vms/life1", {"max_memory_mib": 512}, expect=200).value
    assert vm["max_memory_mib"] == 512

    vm = api.act("life1", "start")
    assert_vm_state(vm, "running")
    assert vm["accel_active"] == "tcg"

    # name and the maximums are fixed while the VM runs; autostart is not
    # (vcpus and memory change live: see test_errors)
    api.call("PATCH", "/v1/vms/life1", {"name": "life1-new"}, expect=409, code="invalid-state")
    vm = api.call("PATCH", "/v1/vms/life1", {"autostart": False}, expect=200).value
    assert vm["autostart"] is False

    assert_vm_state(api.act("life1", "pause"), "paused")
    assert_vm_state(api.act("life1", "resume"), "running")
    assert_vm_state(api.act("life1", "reboot"), "running")

    # The guest agent: the fake driver's VMs have none, so show says why and
    # exec and set-password answer 409 at once; bad bodies 400.
    guest = api.call("GET", "/v1/vms/life1", expect=200).value["guest"]
    assert guest["agent"] is False and "does not answer" in guest["reason"]
    api.call("POST", "/v1/vms/life1/exec", {"command": ["uname", "-r"]}, expect=409,
             code="invalid-state")
    api.call("POST", "/v1/vms/life1/exec", {"command": "uname -r"}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/vms/life1/exec", {"command": ["true"], "timeout_s": 0}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/vms/life1/set-password", {"user": "root", "password": "pw"},
             expect=409, code="invalid-state")
    api.call("POST", "/v1/vms/life1/set-password", {"user": "a:b", "password": "pw"},
             expect=400, code="invalid-argument")

    log = api.call("GET", "/v1/vms/life1/console/log", expect=200)
    assert log.media_type == "text/plain"
    console = api.call("GET", "/v1/vms/life1/console", expect=101,
                       headers={"Connection": "Upgrade", "Upgrade": "vireo-console"})
    assert console.headers["upgrade"] == "vireo-console"

    api.call("DELETE", "/v1/vms/life1", expect=409, code="invalid-state")

    vm = api.act("life1", "stop", {"timeout_s": 5})
    assert_vm_state(vm, "stopped")
    assert vm["exit_reason"]

    vm = api.call("PATCH", "/v1/vms/life1", {"name": "life1-new", "vcpus": 1}, expect=200).value
    assert vm["name"] == "life1-new" and vm["id"] == vm_id
    api.call("GET", "/v1/vms/life1", expect=404, code="not-found")
    assert api.call("GET", f"/v1/vms/{vm_id}", expect=200).value["name"] == "life1-new"

    task = api.call("DELETE", "/v1/vms/life1-new", expect=202).value["task"]
    assert task["kind"] == "delete"
    api.wait_task(task)
    api.call("GET", f"/v1/vms/{vm_id}", expect=404, code="not-found")

    tasks = api.call("GET", "/v1/tasks", expect=200).value["tasks"]
    ours = [t["kind"] for t in tasks if t["target"] in ("life1", "life1-new")]
    assert ours == ["delete", "stop", "reboot", "resume", "pause", "start", "create"], (
        f"tasks are not newest first: {ours}")


def test_force_stop_and_force_delete(api):
    api.create("force1")
    assert_vm_state(api.act("force1", "start"), "running")
    vm = api.act("force1", "stop", {"force": True})
    assert_vm_state(vm, "stopped")

    assert_vm_state(api.act("force1", "start"), "running")
    task = api.call("DELETE", "/v1/vms/force1?force=true", expect=202).value["task"]
    api.wait_task(task)
    api.call("GET", "/v1/vms/force1", expect=404, code="not-found")


# Bodies the document's request schemas refuse and vireod answers with 400.
INVALID_BODIES = [
    ("POST", "/v1/vms", {"name": "x", "colour": "red"}),  # unknown key
    ("POST", "/v1/vms", {}),  # name missing
    ("POST", "/v1/vms", {"name": "Bad_Name"}),
    ("POST", "/v1/vms", {"name": "-x"}),
    ("POST", "/v1/vms", {"name": "x" * 64}),
    ("POST", "/v1/vms", {"name": "x", "vcpus": 0}),
    ("POST", "/v1/vms", {"name": "x", "vcpus": "2"}),
    ("POST", "/v1/vms", {"name": "x", "memory_mib": 16}),
    ("POST", "/v1/vms", {"name": "x", "disk_size_bytes": -1}),
    ("POST", "/v1/vms", {"name": "x", "accel": "hvf"}),
    ("POST", "/v1/vms", {"name": "x", "autostart": "yes"}),
    ("PATCH", "/v1/vms/err1", {}),
    ("PATCH", "/v1/vms/err1", {"cpus": 2}),
    ("PATCH", "/v1/vms/err1", {"memory_mib": 16}),
    ("PATCH", "/v1/vms/err1", {"max_memory_mib": 16}),
    ("PATCH", "/v1/vms/err1", {"max_vcpus": 0}),
    ("PATCH", "/v1/vms/err1", {"name": "Bad"}),
    ("PATCH", "/v1/vms/err1", {"autostart": 1}),
    ("POST", "/v1/vms/err1/start", {"now": True}),
    ("POST", "/v1/vms/err1/stop", {"hard": True}),
    ("POST", "/v1/vms/err1/stop", {"timeout_s": 3601}),
    ("POST", "/v1/vms/err1/stop", {"timeout_s": -1}),
    ("POST", "/v1/vms/err1/pause", {"x": 1}),
    ("POST", "/v1/vms", {"name": "x", "full_clone": "yes"}),
    ("POST", "/v1/vms/err1/template", {}),
    ("POST", "/v1/vms/err1/clone", {}),
    ("POST", "/v1/vms/err1/clone", {"name": "Bad"}),
    ("POST", "/v1/vms/err1/clone", {"name": "x", "full": "yes"}),
    ("POST", "/v1/vms/err1/template", {"image": "Bad"}),
    ("POST", "/v1/vms/err1/template", {"image": "x", "kernel": "y"}),
    ("POST", "/v1/vms/err1/disks", {}),  # neither volume nor size_bytes
    ("POST", "/v1/vms/err1/disks", {"volume": "default/x", "size_bytes": MiB}),  # both
    ("POST", "/v1/vms/err1/disks", {"volume": "default/x", "pool": "default"}),
    ("POST", "/v1/vms/err1/disks", {"volume": "no-pool"}),
    ("POST", "/v1/vms/err1/disks", {"size_bytes": 0}),
    ("POST", "/v1/vms/err1/disks", {"size_bytes": -1}),
    ("POST", "/v1/vms/err1/disks", {"size_bytes": MiB, "bus": "scsi"}),
    ("POST", "/v1/pools", {"name": "p"}),
    ("POST", "/v1/pools", {"name": "p", "path": "relative"}),
    ("POST", "/v1/pools", {"name": "Bad", "path": "/tmp"}),
    ("POST", "/v1/pools", {"name": "p", "path": "/tmp", "type": "lvm"}),
    ("POST", "/v1/pools", {"name": "p", "path": "/tmp", "x": 1}),
    ("POST", "/v1/pools", {"name": "p", "type": "iscsi", "portal": "127.0.0.1"}),  # no target
    ("POST", "/v1/pools/default/volumes/err1-disk0/format", {"format": "raw"}),
    ("POST", "/v1/pools/default/volumes", {"name": "x"}),  # neither size_bytes nor import_path
    ("POST", "/v1/pools/default/volumes", {"name": "x", "size_bytes": MiB,
                                           "import_path": "/etc/hostname"}),  # both
    ("POST", "/v1/pools/default/volumes", {"size_bytes": MiB}),
    ("POST", "/v1/pools/default/volumes", {"name": "x", "size_bytes": 0}),
    ("POST", "/v1/pools/default/volumes", {"name": "x", "size_bytes": (64 << 40) + 1}),
    ("POST", "/v1/pools/default/volumes", {"name": "x", "size_bytes": MiB, "format": "vmdk"}),
    ("POST", "/v1/pools/default/volumes", {"name": "Bad", "size_bytes": MiB}),
    ("POST", "/v1/pools/default/volumes", {"name": "x", "import_path": "relative"}),
    ("POST", "/v1/pools/default/volumes/err1-disk0/resize", {}),
    ("POST", "/v1/pools/default/volumes/err1-disk0/resize", {"size_bytes": 0}),
    ("POST", "/v1/pools/default/volumes/err1-disk0/resize", {"size_bytes": (64 << 40) + 1}),
    ("POST", "/v1/pools/default/volumes/err1-disk0/resize", {"size_bytes": MiB, "shrink": True}),
    ("POST", "/v1/pools/default/volumes/err1-disk0/clone", {}),
    ("POST", "/v1/pools/default/volumes/err1-disk0/clone", {"target": "no-pool"}),
    ("POST", "/v1/pools/default/volumes/err1-disk0/clone", {"target": "default/Bad"}),
    ("POST", "/v1/pools/default/volumes/err1-disk0/clone", {"target": "default/x", "linked": 1}),
    ("POST", "/v1/images", {"name": "x"}),
    ("POST", "/v1/images", {"name": "Bad", "import_path": "/etc/hostname"}),
    ("POST", "/v1/images", {"name": "x", "import_path": "relative"}),
    ("POST", "/v1/images", {"name": "x", "import_path": "/etc/hostname", "disk": "y"}),
    ("POST", "/v1/vms", {"name": "x", "networks": []}),
    ("POST", "/v1/vms", {"name": "x", "networks": "default"}),
    ("POST", "/v1/vms", {"name": "x", "networks": [1]}),
    ("POST", "/v1/vms", {"name": "x", "networks": ["user"] * 9}),
    ("POST", "/v1/vms/err1/nics", {}),  # network missing
    ("POST", "/v1/vms/err1/nics", {"network": 1}),
    ("POST", "/v1/vms/err1/nics", {"network": "Bad"}),
    ("POST", "/v1/vms/err1/nics", {"network": "default", "mac": "zz"}),
    ("POST", "/v1/vms/err1/nics", {"network": "default", "mac": "01:00:5e:00:00:01"}),  # multicast
    ("POST", "/v1/vms/err1/nics", {"network": "default", "mac": "00:00:00:00:00:00"}),  # no address
    ("POST", "/v1/vms/err1/nics", {"network": "default", "model": "e1000"}),
    ("POST", "/v1/vms/err1/cdrom", {"volume": 3}),
    ("POST", "/v1/vms/err1/cdrom", {"medium": "default/x"}),
    ("PUT", "/v1/vms/err1/cloud-init", {}),  # settings missing
    ("PUT", "/v1/vms/err1/cloud-init", {"settings": {"user": "Bad User"}}),
    ("PUT", "/v1/vms/err1/cloud-init", {"settings": "dhcp"}),
    ("POST", "/v1/networks", {}),
    ("POST", "/v1/networks", {"name": "x"}),  # type missing
    ("POST", "/v1/networks", {"type": "nat"}),  # name missing
    ("POST", "/v1/networks", {"name": "x", "type": "mesh"}),
    ("POST", "/v1/networks", {"name": "x", "type": "nat", "colour": "red"}),  # unknown key
    ("POST", "/v1/networks", {"name": "Bad", "type": "nat"}),
    ("POST", "/v1/networks", {"name": "user", "type": "nat"}),  # reserved
    ("POST", "/v1/networks", {"name": "x", "type": "nat", "subnet": "10.1.0.0/31"}),
    ("POST", "/v1/networks", {"name": "x", "type": "nat", "subnet": "10.1.0.0"}),
    ("POST", "/v1/networks", {"name": "x", "type": "nat", "subnet": "bogus/24"}),
    ("POST", "/v1/networks", {"name": "x", "type": "isolated", "dhcp": "yes"}),
    ("POST", "/v1/networks", {"name": "x", "type": "nat", "vni": 5}),  # a vxlan key
    ("POST", "/v1/networks", {"name": "x", "type": "nat", "bridge": "a-too-long-ifname"}),
    ("POST", "/v1/networks", {"name": "x", "type": "bridge"}),  # bridge missing
    ("POST", "/v1/networks", {"name": "x", "type": "bridge", "bridge": "br0",
                              "subnet": "10.1.0.0/24"}),
    ("POST", "/v1/networks", {"name": "x", "type": "bridge", "bridge": "br0", "dhcp": False}),
    ("POST", "/v1/networks", {"name": "x", "type": "vlan", "vlan_id": 10}),  # uplink missing
    ("POST", "/v1/networks", {"name": "x", "type": "vlan", "uplink": "vup0"}),  # vlan_id missing
    ("POST", "/v1/networks", {"name": "x", "type": "vlan", "uplink": "vup0", "vlan_id": 4095}),
    ("POST", "/v1/networks", {"name": "x", "type": "vlan", "uplink": "vup0", "vlan_id": 10,
                              "remotes": ["192.0.2.1"]}),
    ("POST", "/v1/networks", {"name": "x", "type": "vxlan", "remotes": ["192.0.2.1"]}),  # vni
    ("POST", "/v1/networks", {"name": "x", "type": "vxlan", "vni": 7}),  # remotes missing
    ("POST", "/v1/networks", {"name": "x", "type": "vxlan", "vni": 7, "remotes": []}),
    ("POST", "/v1/networks", {"name": "x", "type": "vxlan", "vni": 7, "remotes": "192.0.2.1"}),
    ("POST", "/v1/networks", {"name": "x", "type": "vxlan", "vni": 16777216,
                              "remotes": ["192.0.2.1"]}),
    ("POST", "/v1/networks", {"name": "x", "type": "vxlan", "vni": 7,
                              "remotes": ["192.0.2.1", "192.0.2.1"]}),
    ("POST", "/v1/networks", {"name": "x", "type": "vxlan", "vni": 7, "remotes": ["nowhere"]}),
    ("POST", "/v1/networks", {"name": "x", "type": "vxlan", "vni": 7, "remotes": ["192.0.2.1"],
                              "port": 0}),
    ("POST", "/v1/networks", {"name": "x", "type": "vxlan", "vni": 7, "remotes": ["192.0.2.1"],
                              "uplink": "vup0"}),  # a vlan key
]

# Network bodies the document allows and vireod refuses with 400.
REFUSED_NETWORKS = [
    {"name": "x", "type": "isolated", "subnet": "10.213.0.1/24"},  # host bits set
    {"name": "x", "type": "isolated", "subnet": "10.213.0.0/30"},  # no room for DHCP
    {"name": "x", "type": "vxlan", "vni": 7, "remotes": ["224.0.0.1"]},  # not unicast
    {"name": "x", "type": "vxlan", "vni": 7, "remotes": ["192.0.2.1"], "local": "192.0.2.1"},
    {"name": "x", "type": "vxlan", "vni": 7, "remotes": ["192.0.2.1"], "dhcp": True},  # no subnet
    {"name": "x", "type": "vlan", "uplink": "abcdefghijklmno", "vlan_id": 4094},  # name > 15
]

# Routes that need a valid body before they look up what the path names.
NOT_FOUND_WITH_BODY = [
    ("POST", "/v1/vms/nope/disks", {"size_bytes": MiB}),
    ("POST", "/v1/vms/nope/template", {"image": "x"}),
    ("POST", "/v1/vms/nope/clone", {"name": "x"}),
    ("POST", "/v1/pools/nope/volumes", {"name": "x", "size_bytes": MiB}),
    ("POST", "/v1/pools/default/volumes/nope/resize", {"size_bytes": MiB}),
    ("POST", "/v1/pools/nope/volumes/x/resize", {"size_bytes": MiB}),
    ("POST", "/v1/pools/default/volumes/nope/clone", {"target": "default/x"}),
    ("POST", "/v1/pools/nope/volumes/x/format", {"format": "qcow2"}),
    ("POST", "/v1/pools/default/volumes/err1-disk0/clone", {"target": "nope/x"}),
    ("POST", "/v1/vms/nope/nics", {"network": "default"}),
    ("POST", "/v1/vms/nope/cdrom", {"volume": "default/x"}),
    ("PUT", "/v1/vms/nope/cloud-init", {"settings": None}),
    ("POST", "/v1/vms/nope/exec", {"command": ["true"]}),
    ("POST", "/v1/vms/nope/set-password", {"user": "root", "password": "pw"}),
]


def test_errors(api):
    host = api.call("GET", "/v1/host", expect=200).value
    api.create("err1")

    # 404: unknown VM or task, and unknown routes
    for method, path in [("GET", "/v1/vms/nope"), ("PATCH", "/v1/vms/nope"),
                         ("DELETE", "/v1/vms/nope"), ("POST", "/v1/vms/nope/start"),
                         ("POST", "/v1/vms/nope/stop"), ("POST", "/v1/vms/nope/reboot"),
                         ("POST", "/v1/vms/nope/pause"), ("POST", "/v1/vms/nope/resume"),
                         ("GET", "/v1/vms/nope/console"), ("GET", "/v1/vms/nope/console/log"),
                         ("GET", f"/v1/tasks/{uuid.uuid4()}"),
                         ("DELETE", f"/v1/tasks/{uuid.uuid4()}"),
                         ("POST", f"/v1/tasks/{uuid.uuid4()}/cancel"),
                         ("GET", "/v1/vms/nope/disks"), ("DELETE", "/v1/vms/nope/disks/1"),
                         ("DELETE", "/v1/vms/err1/disks/1"), ("DELETE", "/v1/images/nope"),
                         ("DELETE", "/v1/images/Bad_Name"), ("GET", "/v1/images/nope"), ("GET", "/v1/pools/nope"),
                         ("DELETE", "/v1/pools/nope"), ("POST", "/v1/pools/nope/refresh"),
                         ("GET", "/v1/pools/default/volumes/nope"),
                         ("GET", "/v1/pools/nope/volumes/nope"),
                         ("DELETE", "/v1/pools/default/volumes/nope"),
                         ("GET", "/v1/pools/default/volumes/nope/data"),
                         ("GET", "/v1/networks/nope"), ("DELETE", "/v1/networks/nope"),
                         ("GET", "/v1/vms/nope/nics"), ("DELETE", "/v1/vms/nope/nics/0"),
                         ("DELETE", "/v1/vms/err1/nics/1")]:
        api.call(method, path, expect=404, code="not-found")
    for method, path, body in NOT_FOUND_WITH_BODY:
        api.call(method, path, body, expect=404, code="not-found")
    for path in ["/v1/nope", "/v2/host", "/v1/vms/err1/bogus", "/v1/vms/", "/",
                 "/v1/pools/default/volumes/x/bogus", "/v1/volumes/default",
                 "/v1/networks/default/bogus", "/v1/vms/err1/nics/0/x"]:
        api.call_unrouted("GET", path, expect=404, response="NotFound")

    # 405: the path exists, the method does not
    for method, path in [("PUT", "/v1/vms/err1"), ("DELETE", "/v1/host"),
                         ("POST", "/v1/tasks"), ("GET", "/v1/vms/err1/start"),
                         ("PUT", "/v1/pools"), ("PATCH", "/v1/pools/default"),
                         ("GET", "/v1/pools/default/volumes"), ("POST", "/v1/volumes"),
                         ("POST", "/v1/pools/default/volumes/x/data"),
                         ("PUT", "/v1/images/default"), ("GET", "/v1/vms/err1/template"),
                         ("GET", "/v1/vms/err1/disks/1"), ("PUT", "/v1/networks"),
                         ("PUT", "/v1/networks/default"), ("POST", "/v1/networks/default"),
                         ("PUT", "/v1/vms/err1/nics"), ("GET", "/v1/vms/err1/nics/0")]:
        api.call_unrouted(method, path, expect=405, response="MethodNotAllowed")

    # 400: malformed JSON, a body that is not an object, schema violations
    json_header = {"Content-Type": "application/json"}
    api.call("POST", "/v1/vms", raw=b'{"name":', headers=json_header,
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/vms", raw=b'["err2"]', headers=json_header,
             expect=400, code="invalid-argument")
    api.call("GET", "/v1/host", raw=b"{", headers=json_header, expect=400, code="invalid-argument")
    for method, path, body in INVALID_BODIES:
        op = api.doc["paths"][api.template_for(path)][method.lower()]
        schema = resolve(api.doc, op["requestBody"])["content"]["application/json"]["schema"]
        assert schema_errors(api.doc, schema, body), (
            f"{method} {path} {body}: vireod refuses it but the document allows it")
        api.call(method, path, body, expect=400, code="invalid-argument")
    # valid by the schema, refused by vireod
    api.call("POST", "/v1/vms", {"name": "err2", "image": "no-such-image"},
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/vms", {"name": "err2", "disk_size_bytes": 1000},
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/vms", {"name": "err2", "vcpus": host["cpus"] + 1},
             expect=400, code="invalid-argument")
    api.call("GET", "/v1/vms/err1/console", expect=400, code="invalid-argument")
    api.call("DELETE", "/v1/vms/err1/disks/0", expect=400, code="invalid-argument")  # boot disk
    api.call("DELETE", "/v1/vms/err1/disks/x", expect=400, code="invalid-argument")
    api.call("DELETE", "/v1/vms/err1/disks/1001", expect=400, code="invalid-argument")
    api.call("POST", "/v1/vms/err1/disks", {"volume": "default/no-such-volume"},
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/pools/default/volumes/err1-disk0/resize", {"size_bytes": MiB},
             expect=400, code="invalid-argument")  # a shrink without allow_shrink
    api.call("POST", "/v1/pools", {"name": "p", "path": "/no/such/dir"},
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/pools", {"name": "p", "path": "/etc/hostname"},
             expect=400, code="invalid-argument")  # not a directory
    api.call("POST", "/v1/pools/default/volumes", {"name": "x", "import_path": "/no/such/file"},
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/vms", {"name": "err2", "networks": ["default", "no-such-net"]},
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/vms/err1/nics", {"network": "no-such-net"},
             expect=400, code="invalid-argument")
    api.call("DELETE", "/v1/vms/err1/nics/x", expect=400, code="invalid-argument")
    api.call("DELETE", "/v1/vms/err1/nics/1001", expect=400, code="invalid-argument")
    api.call("POST", "/v1/networks", raw=b"", headers=json_header,
             expect=400, code="invalid-argument")  # a network needs a body
    for body in REFUSED_NETWORKS:
        api.call("POST", "/v1/networks", body, expect=400, code="invalid-argument")
    for body in [{"name": "x", "import_path": "/no/such/file"},
                 {"name": "x", "import_path": "/etc/hostname", "cmdline": "quiet"},
                 {"name": "x", "import_path": "/etc/hostname", "initrd_path": "/etc/hostname"},
                 {"name": "x", "import_path": "/etc/hostname", "kernel_path": "/no/such/file"}]:
        api.call("POST", "/v1/images", body, expect=400, code="invalid-argument")

    # 409: name taken, wrong state
    api.call("POST", "/v1/vms", {"name": "err1"}, expect=409, code="already-exists")
    api.create("err3")
    api.call("PATCH", "/v1/vms/err3", {"name": "err1"}, expect=409, code="already-exists")
    for action in ("stop", "pause", "resume", "reboot"):
        api.call("POST", f"/v1/vms/err1/{action}", expect=409, code="invalid-state")
    upgrade = {"Connection": "Upgrade", "Upgrade": "vireo-console"}
    api.call("GET", "/v1/vms/err1/console", headers=upgrade, expect=409, code="invalid-state")
    # the display: err1 has none (409); a bad key or request is a 400 first
    api.call("GET", "/v1/vms/err1/screenshot", expect=409, code="invalid-state")
    api.call("POST", "/v1/vms/err1/send-keys", {"keys": ["nope"]}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/vms/err1/send-keys", {"keys": ["ret"]}, expect=409,
             code="invalid-state")
    api.call("GET", "/v1/vms/err1/vnc", expect=400, code="invalid-argument")
    api.call("POST", "/v1/vms/err1/vnc-ticket", {"ttl_seconds": 1}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/vms/err1/vnc-ticket", {}, expect=409, code="invalid-state")
    api.call("GET", "/v1/vms/err1/vnc", headers={"Connection": "Upgrade", "Upgrade": "vireo-vnc"},
             expect=409, code="invalid-state")
    api.act("err1", "start")
    api.call("POST", "/v1/vms/err1/start", expect=409, code="invalid-state")
    api.call("DELETE", "/v1/vms/err1", expect=409, code="invalid-state")
    # vcpus and memory of a running VM change live, in a task, within the maximums
    task = api.call("PATCH", "/v1/vms/err1", {"memory_mib": 256}, expect=202).value["task"]
    assert task["kind"] == "set-resources"
    assert api.wait_task(task)["state"] == "succeeded"
    vm = api.call("GET", "/v1/vms/err1", expect=200).value
    assert vm["memory_mib"] == 256 and vm["memory_actual_mib"] == 256
    assert vm["vcpus_plugged"] == 1
    api.call("PATCH", "/v1/vms/err1", {"memory_mib": 1024}, expect=400, code="invalid-argument")
    api.call("PATCH", "/v1/vms/err1", {"vcpus": 2}, expect=400, code="invalid-argument")
    api.call("PATCH", "/v1/vms/err1", {"max_vcpus": 2}, expect=409, code="invalid-state")
    # disks and NICs hot-plug into a running VM, but not into a paused one
    api.act("err1", "pause")
    api.call("POST", "/v1/vms/err1/disks", {"size_bytes": MiB}, expect=409, code="invalid-state")
    api.call("POST", "/v1/vms/err1/nics", {"network": "user"}, expect=409, code="invalid-state")
    api.call("DELETE", "/v1/vms/err1/nics/0", expect=409, code="invalid-state")
    api.call("POST", "/v1/vms/err1/cdrom", {"volume": None}, expect=409, code="invalid-state")
    api.call("PUT", "/v1/vms/err1/cloud-init", {"settings": {}}, expect=409,
             code="invalid-state")
    assert api.call("GET", "/v1/vms/err1/cloud-init", expect=200).value["settings"] is None
    api.act("err1", "resume")
    api.call("POST", "/v1/vms/err1/template", {"image": "err1-image"},
             expect=409, code="invalid-state")
    api.call("POST", "/v1/pools/default/volumes/err1-disk0/clone", {"target": "default/x"},
             expect=409, code="invalid-state")  # attached to a running VM
    api.call("POST", "/v1/pools", {"name": "default", "path": "/tmp"},
             expect=409, code="already-exists")
    api.call("POST", "/v1/pools/default/volumes", {"name": "err1-disk0", "size_bytes": MiB},
             expect=409, code="already-exists")
    api.call("POST", "/v1/images", {"name": "default", "import_path": "/etc/hostname"},
             expect=409, code="already-exists")
    api.call("POST", "/v1/networks", {"name": "default", "type": "isolated"},
             expect=409, code="already-exists")

    # 413: over 1 MiB, whatever the content
    big = b'{"name": "big", "pad": "' + b"x" * (1 << 20) + b'"}'
    api.call("POST", "/v1/vms", raw=big, headers=json_header,
             expect=413, code="payload-too-large")
    api.call("POST", "/v1/pools/default/volumes", raw=big, headers=json_header,
             expect=413, code="payload-too-large")
    api.call("POST", "/v1/networks", raw=big, headers=json_header,
             expect=413, code="payload-too-large")

    # 415: a body that is not declared as JSON
    api.call("POST", "/v1/vms", raw=b'{"name": "err2"}', headers={"Content-Type": "text/plain"},
             expect=415, code="unsupported-media-type")
    api.call("POST", "/v1/vms/err1/stop", raw=b"{}", expect=415, code="unsupported-media-type")
    api.call("POST", "/v1/pools", raw=b'{"name": "p", "path": "/tmp"}',
             headers={"Content-Type": "application/octet-stream"},
             expect=415, code="unsupported-media-type")
    api.call("POST", "/v1/networks", raw=b'{"name": "n", "type": "nat"}',
             headers={"Content-Type": "text/plain"}, expect=415, code="unsupported-media-type")

    # 503: KVM asked for where it is not usable (always so under the fake driver)
    api.call("POST", "/v1/vms", {"name": "err2", "accel": "kvm"}, expect=503, code="unavailable")

    # none of the refused requests left a VM, pool, volume or image behind
    names = {v["name"] for v in api.call("GET", "/v1/vms", expect=200).value["vms"]}
    assert not names & {"x", "err2", "big"}, names
    assert [p["name"] for p in api.call("GET", "/v1/pools", expect=200).value["pools"]] == [
        "default"]
    keys = {v["key"] for v in api.call("GET", "/v1/volumes", expect=200).value["volumes"]}
    assert keys == {"default/err1-disk0", "default/err3-disk0"}, keys
    assert api.image("x") is None and api.image("err1-image") is None
    networks = api.call("GET", "/v1/networks", expect=200).value["networks"]
    assert [n["name"] for n in networks] == ["default"], networks


# ---- storage ---------------------------------------------------------------------------


def test_pools(api, scratch, state_dir):
    pools = api.call("GET", "/v1/pools", expect=200).value["pools"]
    default = next(p for p in pools if p["name"] == "default")
    assert default["type"] == "dir"
    assert default["path"] == str((state_dir / "pools" / "default").resolve())
    assert default["capacity_bytes"] >= default["available_bytes"]
    assert api.call("GET", "/v1/pools/default", expect=200).value["path"] == default["path"]

    directory = scratch / "pool-extra"
    directory.mkdir()
    link = scratch / "pool-extra-link"
    link.symlink_to(directory)
    pool = api.call("POST", "/v1/pools", {"name": "extra", "path": str(link)}, expect=201).value
    assert pool["name"] == "extra" and pool["type"] == "dir" and pool["volumes"] == 0
    assert pool["path"] == str(directory.resolve())  # symlinks resolved
    assert api.call("GET", "/v1/pools/extra", expect=200).value["path"] == pool["path"]
    names = [p["name"] for p in api.call("GET", "/v1/pools", expect=200).value["pools"]]
    assert names == sorted(names) and {"default", "extra"} <= set(names)

    # the name or the directory is taken
    api.call("POST", "/v1/pools", {"name": "extra", "path": str(scratch)},
             expect=409, code="already-exists")
    api.call("POST", "/v1/pools", {"name": "extra2", "type": "dir", "path": str(directory)},
             expect=409, code="already-exists")
    api.call("POST", "/v1/pools", {"name": "extra2", "path": default["path"]},
             expect=409, code="already-exists")

    # the default pool, and a pool holding a volume, cannot be deleted
    api.call("DELETE", "/v1/pools/default", expect=409, code="invalid-state")
    volume = api.new_volume("extra", {"name": "in-extra", "size_bytes": MiB})
    assert volume["path"] == str(directory.resolve() / "in-extra.qcow2")
    assert Path(volume["path"]).is_file()
    assert api.call("GET", "/v1/pools/extra", expect=200).value["volumes"] == 1
    api.call("DELETE", "/v1/pools/extra", expect=409, code="invalid-state")
    api.delete_volume("extra/in-extra")
    assert not Path(volume["path"]).exists()

    assert api.call("DELETE", "/v1/pools/extra", expect=200).value == {}
    api.call("GET", "/v1/pools/extra", expect=404, code="not-found")
    api.call("DELETE", "/v1/pools/extra", expect=404, code="not-found")
    assert directory.is_dir(), "deleting a pool must leave its directory"


def test_shared_pool(api, scratch):
    directory = scratch / "pool-shared"
    directory.mkdir()
    pool = api.call("POST", "/v1/pools", {"name": "shared", "path": str(directory),
                                          "shared": True}, expect=201).value
    assert pool["shared"] is True and pool["reachable"] is True and pool["host"] is None
    assert json.loads((directory / ".vireo-pool.json").read_text())["id"] == pool["id"]
    shown = api.call("GET", "/v1/pools/shared", expect=200).value
    assert [h["reachable"] for h in shown["hosts"]] == [True]
    listed = api.call("GET", "/v1/pools", expect=200).value["pools"]
    assert next(p for p in listed if p["name"] == "shared")["hosts"] == shown["hosts"]
    # a second shared pool on a marked directory: refused, naming the first
    other = api.call("POST", "/v1/pools", {"name": "shared2", "path": str(directory),
                                           "shared": True}, expect=409, code="already-exists")
    assert "'shared'" in other.value["error"]["message"]
    api.call("POST", "/v1/pools", {"name": "b", "type": "backup", "path": str(scratch),
                                   "shared": True}, expect=400, code="invalid-argument")
    volume = api.new_volume("shared", {"name": "in-shared", "size_bytes": MiB})
    assert volume["attached_host"] is None
    api.delete_volume("shared/in-shared")
    assert api.call("DELETE", "/v1/pools/shared", expect=200).value == {}
    assert not (directory / ".vireo-pool.json").exists()


def test_volumes(api, scratch):
    vol = api.new_volume("default", {"name": "vol1", "size_bytes": 8 * MiB})
    assert vol["format"] == "qcow2" and vol["virtual_size_bytes"] == 8 * MiB
    assert vol["key"] == "default/vol1" and vol["pool"] == "default" and vol["name"] == "vol1"
    assert vol["path"].endswith("/pools/default/vol1.qcow2") and Path(vol["path"]).is_file()
    assert vol["backing"] == [] and vol["backing_volume"] is None and vol["image"] is None
    assert vol["attached_to"] is None and vol["shareable"] is False
    raw = api.new_volume("default", {"name": "vol-raw", "size_bytes": 4 * MiB, "format": "raw"})
    assert raw["format"] == "raw" and raw["path"].endswith("/pools/default/vol-raw.raw")
    assert raw["virtual_size_bytes"] == 4 * MiB == Path(raw["path"]).stat().st_size

    volumes = api.call("GET", "/v1/volumes", expect=200).value["volumes"]
    keys = [v["key"] for v in volumes]
    assert keys == sorted(keys) and {"default/vol1", "default/vol-raw"} <= set(keys)
    in_default = api.call("GET", "/v1/volumes?pool=default", expect=200).value["volumes"]
    assert [v["key"] for v in in_default] == [v["key"] for v in volumes if v["pool"] == "default"]
    api.call("GET", "/v1/volumes?pool=nope", expect=404)

    # shareable: set and cleared while detached; refused while attached
    shared = api.call("PATCH", "/v1/pools/default/volumes/vol-raw", {"shareable": True},
                      expect=200).value
    assert shared["shareable"] is True and api.volume("default/vol-raw")["shareable"] is True
    api.call("PATCH", "/v1/pools/default/volumes/vol-raw", {"shareable": "yes"}, expect=400,
             code="invalid-argument")
    api.call("PATCH", "/v1/pools/default/volumes/nope", {"shareable": True}, expect=404,
             code="not-found")
    api.call("PATCH", "/v1/pools/default/volumes/vol-raw", {"shareable": False}, expect=200)

    # 507: a raw volume is fully allocated, so one larger than the free space is refused
    free = api.call("GET", "/v1/pools/default", expect=200).value["available_bytes"]
    if free + (1 << 30) <= 64 << 40:
        api.call("POST", "/v1/pools/default/volumes",
                 {"name": "too-big", "size_bytes": free + (1 << 30), "format": "raw"},
                 expect=507, code="insufficient-storage")
        api.call("GET", "/v1/pools/default/volumes/too-big", expect=404, code="not-found")

    # resize: grow; shrink only with allow_shrink
    path = "/v1/pools/default/volumes/vol1/resize"
    api.task_ok("POST", path, {"size_bytes": 16 * MiB}, kind="volume-resize", target="vol1")
    assert api.volume("default/vol1")["virtual_size_bytes"] == 16 * MiB
    api.call("POST", path, {"size_bytes": 12 * MiB}, expect=400, code="invalid-argument")
    assert api.volume("default/vol1")["virtual_size_bytes"] == 16 * MiB
    api.task_ok("POST", path, {"size_bytes": 12 * MiB, "allow_shrink": True},
                kind="volume-resize", target="vol1")
    assert api.volume("default/vol1")["virtual_size_bytes"] == 12 * MiB

    # clones: linked (a qcow2 overlay on the source), full (a copy in the source's format)
    reply = api.call("POST", "/v1/pools/default/volumes/vol1/clone",
                     {"target": "default/vol1-linked", "linked": True}, expect=202).value
    assert reply["volume"]["key"] == "default/vol1-linked", reply
    assert reply["volume"]["state"] == "creating", reply
    assert (reply["task"]["kind"], reply["task"]["target"]) == ("volume-clone-linked",
                                                                "vol1-linked")
    api.wait_task(reply["task"])
    linked = api.volume("default/vol1-linked")
    assert linked["format"] == "qcow2" and linked["backing_volume"] == "default/vol1"
    assert linked["backing"] == [{"path": vol["path"], "format": "qcow2"}], linked
    assert linked["virtual_size_bytes"] == 12 * MiB and linked["image"] is None

    reply = api.call("POST", "/v1/pools/default/volumes/vol-raw/clone",
                     {"target": "default/raw-copy"}, expect=202).value
    assert (reply["task"]["kind"], reply["task"]["target"]) == ("volume-clone", "raw-copy")
    api.wait_task(reply["task"])
    copy = api.volume("default/raw-copy")
    assert copy["format"] == "raw" and copy["backing"] == [] and copy["backing_volume"] is None
    assert copy["virtual_size_bytes"] == 4 * MiB

    # 409: the target exists; the volume backs a linked clone
    api.call("POST", "/v1/pools/default/volumes/vol1/clone", {"target": "default/raw-copy"},
             expect=409, code="already-exists")
    api.call("POST", "/v1/pools/default/volumes", {"name": "vol1", "size_bytes": MiB},
             expect=409, code="already-exists")
    api.call("DELETE", "/v1/pools/default/volumes/vol1", expect=409, code="invalid-state")

    # a VM's boot disk: a linked clone of the image, attached to the VM
    users = api.image("default")["used_by"]
    api.create("stor1")
    vm = api.call("GET", "/v1/vms/stor1", expect=200).value
    assert vm["disks"][0]["volume"] == "default/stor1-disk0", vm["disks"]
    boot = api.volume("default/stor1-disk0")
    assert boot["attached_to"] == "stor1" and boot["image"] == "default"
    assert boot["path"] == vm["disks"][0]["path"] and boot["virtual_size_bytes"] == 64 * MiB
    assert len(boot["backing"]) == 1 and boot["backing"][0]["format"] == "raw"
    assert boot["backing"][0]["path"].endswith("/images/default/disk.raw")
    assert api.image("default")["used_by"] == users + 1
    api.call("DELETE", "/v1/images/default", expect=409, code="invalid-state")
    api.call("DELETE", "/v1/pools/default/volumes/stor1-disk0", expect=409, code="invalid-state")
    api.call("PATCH", "/v1/pools/default/volumes/stor1-disk0", {"shareable": True}, expect=409,
             code="invalid-state")
    api.call("POST", "/v1/pools/default/volumes/stor1-disk0/resize",
             {"size_bytes": MiB, "allow_shrink": True}, expect=409, code="invalid-state")
    api.task_ok("POST", "/v1/pools/default/volumes/stor1-disk0/resize",
                {"size_bytes": 80 * MiB}, kind="volume-resize", target="stor1-disk0")
    assert api.volume("default/stor1-disk0")["virtual_size_bytes"] == 80 * MiB
    api.act("stor1", "start")
    api.call("POST", "/v1/pools/default/volumes/stor1-disk0/clone", {"target": "default/x"},
             expect=409, code="invalid-state")
    api.act("stor1", "stop", {"force": True})

    # an import of a host file, in any format qemu-img reads, into qcow2 or raw
    source = scratch / "import.raw"
    with open(source, "wb") as f:
        f.write(b"vireo import test\n" * 100)
        f.truncate(2 * MiB)
    qemu_img("convert", "-f", "raw", "-O", "vmdk", source, scratch / "import.vmdk")
    imported = api.new_volume("default", {"name": "imported",
                                          "import_path": str(scratch / "import.vmdk")},
                              kind="volume-import")
    assert imported["format"] == "qcow2" and imported["virtual_size_bytes"] == 2 * MiB
    imported_raw = api.new_volume("default", {"name": "imported-raw", "format": "raw",
                                              "import_path": str(scratch / "import.vmdk")},
                                  kind="volume-import")
    assert imported_raw["format"] == "raw"
    assert Path(imported_raw["path"]).read_bytes() == source.read_bytes()

    api.delete_volume("default/vol1-linked")
    for key in ("default/vol1", "default/vol-raw", "default/raw-copy", "default/imported",
                "default/imported-raw"):
        api.delete_volume(key)
    api.delete_vm("stor1")
    api.call("GET", "/v1/pools/default/volumes/stor1-disk0", expect=404, code="not-found")
    assert api.image("default")["used_by"] == users


def test_volume_upload_and_download(api, scratch):
    source = scratch / "upload.raw"
    with open(source, "wb") as f:
        f.write(b"vireo upload test\n" * 1000)
        f.truncate(3 * MiB)
    qemu_img("convert", "-f", "raw", "-O", "vmdk", source, scratch / "upload.vmdk")
    body = (scratch / "upload.vmdk").read_bytes()
    octet = {"Content-Type": "application/octet-stream"}

    reply = api.call("PUT", "/v1/pools/default/volumes/uploaded/data", raw=body, headers=octet,
                     expect=202).value
    assert reply["volume"]["key"] == "default/uploaded", reply
    assert reply["volume"]["state"] == "creating", reply
    assert (reply["task"]["kind"], reply["task"]["target"]) == ("volume-import", "uploaded")
    api.wait_task(reply["task"])
    volume = api.volume("default/uploaded")
    assert volume["format"] == "qcow2" and volume["virtual_size_bytes"] == 3 * MiB
    assert volume["backing"] == [] and volume["state"] == "ready"

    download = api.call("GET", "/v1/pools/default/volumes/uploaded/data", expect=200)
    assert download.media_type == "application/octet-stream"
    assert int(download.headers["content-length"]) == len(download.body)
    assert download.body == Path(volume["path"]).read_bytes(), "the file as stored"
    assert download.body[:4] == b"QFI\xfb", "a qcow2 file"
    (scratch / "download.qcow2").write_bytes(download.body)
    info = json.loads(qemu_img("info", "--output=json", scratch / "download.qcow2"))
    assert info["format"] == "qcow2" and info["virtual-size"] == 3 * MiB, info
    qemu_img("convert", "-f", "qcow2", "-O", "raw", scratch / "download.qcow2",
             scratch / "download.raw")
    assert (scratch / "download.raw").read_bytes() == source.read_bytes()

    # a raw volume downloads as its bytes
    raw = api.new_volume("default", {"name": "up-raw", "format": "raw",
                                     "import_path": str(source)}, kind="volume-import")
    assert api.call("GET", "/v1/pools/default/volumes/up-raw/data",
                    expect=200).body == source.read_bytes()

    # errors, answered once the body has been read
    api.call("PUT", "/v1/pools/default/volumes/uploaded/data", raw=body, headers=octet,
             expect=409, code="already-exists")
    api.call("PUT", "/v1/pools/nope/volumes/uploaded/data", raw=body, headers=octet,
             expect=404, code="not-found")
    api.call("PUT", "/v1/pools/default/volumes/Bad_Name/data", raw=body, headers=octet,
             expect=400, code="invalid-argument")
    api.call("PUT", "/v1/pools/default/volumes/empty/data", raw=b"", headers=octet,
             expect=400, code="invalid-argument")
    api.call("GET", "/v1/pools/default/volumes/empty", expect=404, code="not-found")

    api.delete_volume("default/uploaded")
    api.delete_volume(raw["key"])


def test_images_import_and_delete(api, state_dir):
    default_dir = state_dir / "images" / "default"
    body = {"name": "imported", "import_path": str(default_dir / "disk.raw"),
            "kernel_path": str(default_dir / "vmlinux"), "cmdline": "console=ttyS0 quiet"}
    task = api.task_ok("POST", "/v1/images", body, kind="image-import", target="imported")["task"]
    # a finished task cannot be cancelled (409, both routes)
    for method, path in [("POST", f"/v1/tasks/{task['id']}/cancel"),
                         ("DELETE", f"/v1/tasks/{task['id']}")]:
        api.call(method, path, expect=409, code="invalid-state")
    image = api.image("imported")
    assert image["format"] == "qcow2" and image["disk"].endswith("/images/imported/disk.qcow2")
    assert image["kernel"].endswith("/images/imported/vmlinux") and image["initrd"] is None
    assert image["cmdline"] == "console=ttyS0 quiet" and image["used_by"] == 0
    info = json.loads(qemu_img("info", "--output=json", image["disk"]))
    assert info["virtual-size"] == 64 * MiB, info
    names = [i["name"] for i in api.call("GET", "/v1/images", expect=200).value["images"]]
    assert names == sorted(names) and {"default", "imported"} <= set(names)
    api.call("POST", "/v1/images", body, expect=409, code="already-exists")

    # every VM made from the image holds it (a full copy still boots its kernel)
    api.create("img-user", image="imported")
    disk = api.call("GET", "/v1/vms/img-user", expect=200).value["disks"][0]
    assert api.volume(disk["volume"])["image"] == "imported"
    assert api.image("imported")["used_by"] == 1
    api.create("img-copy", image="imported", full_clone=True)
    disk = api.call("GET", "/v1/vms/img-copy", expect=200).value["disks"][0]
    copy = api.volume(disk["volume"])
    assert copy["image"] is None and copy["backing"] == [] and copy["format"] == "qcow2"
    assert copy["virtual_size_bytes"] == 64 * MiB
    assert api.image("imported")["used_by"] == 2
    api.delete_vm("img-copy")
    assert api.image("imported")["used_by"] == 1

    api.call("DELETE", "/v1/images/imported", expect=409, code="invalid-state")
    api.delete_vm("img-user")
    assert api.image("imported")["used_by"] == 0
    assert api.call("DELETE", "/v1/images/imported", expect=200).value == {}
    assert api.image("imported") is None
    assert not (state_dir / "images" / "imported").exists()
    api.call("DELETE", "/v1/images/imported", expect=404, code="not-found")



def test_image_files_are_for_peers_only(api):
    """The routes copy on first use reads another host's image with answer
    the cluster's hosts only (over the mutual-TLS listener): 401 on the
    local socket (tests/e2e/test_cluster_images.py has them served)."""
    for path in ("/v1/images/default/files", "/v1/images/default/files/image.json"):
        api.call("GET", path, expect=401, code="unauthenticated")


def test_vm_disks(api):
    api.create("dsk1")
    disks = api.call("GET", "/v1/vms/dsk1/disks", expect=200).value["disks"]
    assert len(disks) == 1, disks
    boot = disks[0]
    assert boot["index"] == 0 and boot["boot"] is True and boot["bus"] == "virtio"
    assert boot["volume"] == "default/dsk1-disk0" and boot["format"] == "qcow2"
    assert boot["readonly"] is False and boot["shareable"] is False
    vm = api.call("GET", "/v1/vms/dsk1", expect=200).value
    assert vm["disks"] == [{"path": boot["path"], "format": "qcow2", "readonly": False,
                            "volume": "default/dsk1-disk0", "owned": True, "slot": 0}], vm["disks"]

    # add: an existing volume, a new one by size (in a pool, in a format)
    api.new_volume("default", {"name": "dsk-data", "size_bytes": 8 * MiB})
    api.task_ok("POST", "/v1/vms/dsk1/disks", {"volume": "default/dsk-data"},
                kind="disk-add", target="dsk1")
    api.task_ok("POST", "/v1/vms/dsk1/disks", {"size_bytes": 4 * MiB},
                kind="disk-add", target="dsk1")
    api.task_ok("POST", "/v1/vms/dsk1/disks",
                {"size_bytes": 2 * MiB, "pool": "default", "format": "raw"},
                kind="disk-add", target="dsk1")
    disks = api.call("GET", "/v1/vms/dsk1/disks", expect=200).value["disks"]
    keys = ["default/dsk1-disk0", "default/dsk-data", "default/dsk1-disk1", "default/dsk1-disk2"]
    assert [d["volume"] for d in disks] == keys, disks
    assert [d["index"] for d in disks] == [0, 1, 2, 3]
    assert [d["boot"] for d in disks] == [True, False, False, False]
    assert [d["format"] for d in disks] == ["qcow2", "qcow2", "qcow2", "raw"]
    vm = api.call("GET", "/v1/vms/dsk1", expect=200).value
    assert [d["volume"] for d in vm["disks"]] == keys
    assert [d["path"] for d in vm["disks"]] == [d["path"] for d in disks]
    for key in keys:
        assert api.volume(key)["attached_to"] == "dsk1"
    assert api.volume("default/dsk1-disk1")["virtual_size_bytes"] == 4 * MiB
    assert api.volume("default/dsk1-disk2")["virtual_size_bytes"] == 2 * MiB

    # 409: a volume attached already (to this VM or another); the VM is active
    api.create("dsk2")
    api.call("POST", "/v1/vms/dsk1/disks", {"volume": "default/dsk-data"},
             expect=409, code="invalid-state")
    api.call("POST", "/v1/vms/dsk1/disks", {"volume": "default/dsk2-disk0"},
             expect=409, code="invalid-state")
    # a running VM: hot-plug (the fake driver plugs without a guest); the new
    # disk takes the lowest free slot, and goes again
    api.act("dsk1", "start")
    api.task_ok("POST", "/v1/vms/dsk1/disks", {"size_bytes": MiB}, kind="disk-add", target="dsk1")
    vm = api.call("GET", "/v1/vms/dsk1", expect=200).value
    assert [d["slot"] for d in vm["disks"]] == [0, 1, 2, 3, 4], vm["disks"]
    api.call("DELETE", "/v1/vms/dsk1/disks/0", expect=400, code="invalid-argument")
    api.task_ok("DELETE", "/v1/vms/dsk1/disks/4", kind="disk-remove", target="dsk1")
    vm = api.call("GET", "/v1/vms/dsk1", expect=200).value
    assert [d["volume"] for d in vm["disks"]] == keys
    api.delete_volume("default/dsk1-disk3")
    api.act("dsk1", "stop", {"force": True})
    # 400: the boot disk; 404: no such disk
    api.call("DELETE", "/v1/vms/dsk1/disks/0", expect=400, code="invalid-argument")
    api.call("DELETE", "/v1/vms/dsk1/disks/4", expect=404, code="not-found")

    # remove: the later disks move down; the volume stays, detached
    api.task_ok("DELETE", "/v1/vms/dsk1/disks/1", kind="disk-remove", target="dsk1")
    disks = api.call("GET", "/v1/vms/dsk1/disks", expect=200).value["disks"]
    assert [d["volume"] for d in disks] == [keys[0], keys[2], keys[3]], disks
    assert [d["index"] for d in disks] == [0, 1, 2]
    assert api.volume("default/dsk-data")["attached_to"] is None

    # delete with keep_disks: the volumes stay, detached; without: they go
    api.delete_vm("dsk1", "?keep_disks=true")
    for key in keys:
        assert api.volume(key)["attached_to"] is None
        api.delete_volume(key)
    api.delete_vm("dsk2")
    api.call("GET", "/v1/pools/default/volumes/dsk2-disk0", expect=404, code="not-found")


def test_vm_clone(api):
    api.create("cln1")
    api.task_ok("POST", "/v1/vms/cln1/clone", {"name": "cln2", "full": True},
                kind="clone", target="cln1")
    clone = api.call("GET", "/v1/vms/cln2", expect=200).value
    assert clone["disks"][0]["volume"].startswith("default/cln2-")
    path = api.volume(clone["disks"][0]["volume"])["path"]
    info = json.loads(qemu_img("info", "--output=json", path))
    assert "backing-filename" not in info, "a clone's disk stands alone (the image's chain copied)"
    api.call("POST", "/v1/vms/cln1/clone", {"name": "cln2"}, expect=409, code="already-exists")
    api.call("POST", "/v1/vms/cln1/clone", {"name": "cln3", "full": False},
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/vms/cln1/clone", {"name": "cln3", "pool": "nope"},
             expect=400, code="invalid-argument")
    api.act("cln1", "start")
    api.call("POST", "/v1/vms/cln1/clone", {"name": "cln3"}, expect=409, code="invalid-state")
    api.act("cln1", "stop", {"force": True})
    # A shareable disk another VM runs with is not copied (torn): the task
    # fails naming that VM, and the copies made before it go again.
    api.new_volume("default", {"name": "cln-shared", "size_bytes": MiB, "format": "raw"})
    api.call("PATCH", "/v1/pools/default/volumes/cln-shared", {"shareable": True}, expect=200)
    api.create("cln6")
    for vm in ("cln1", "cln6"):
        api.task_ok("POST", f"/v1/vms/{vm}/disks", {"volume": "default/cln-shared"},
                    kind="disk-add", target=vm)
    api.act("cln6", "start")
    before = [v["key"] for v in api.call("GET", "/v1/volumes", expect=200).value["volumes"]]
    task = api.call("POST", "/v1/vms/cln1/clone", {"name": "cln3"}, expect=202).value["task"]
    task = api.wait_task(task, want="failed")
    assert "attached to VM 'cln6' too, which runs" in task["error"]["message"], task
    api.call("GET", "/v1/vms/cln3", expect=404)
    assert [v["key"] for v in api.call("GET", "/v1/volumes", expect=200).value["volumes"]] == before
    api.act("cln6", "stop", {"force": True})
    api.delete_vm("cln6")
    api.delete_vm("cln2")
    api.delete_vm("cln1")
    api.delete_volume("default/cln-shared")
    # UEFI: the clone's NVRAM is a copy of its own.
    api.create("cln4", firmware="uefi")
    api.task_ok("POST", "/v1/vms/cln4/clone", {"name": "cln5"}, kind="clone", target="cln4")
    nvram = api.call("GET", "/v1/vms/cln5", expect=200).value["nvram"]
    assert nvram == "default/cln5-nvram", nvram
    assert api.volume(nvram)["attached_to"] == "cln5"
    api.delete_vm("cln5")
    api.call("GET", "/v1/pools/default/volumes/cln5-nvram", expect=404, code="not-found")
    api.delete_vm("cln4")


def test_vm_template(api):
    api.create("tpl1")
    api.task_ok("POST", "/v1/vms/tpl1/template", {"image": "tpl-image"},
                kind="template", target="tpl1")
    image = api.image("tpl-image")
    assert image["format"] == "qcow2" and image["disk"].endswith("/images/tpl-image/disk.qcow2")
    assert image["kernel"].endswith("/images/tpl-image/vmlinux") and image["initrd"] is None
    assert image["cmdline"] == "console=ttyS0" and image["used_by"] == 0
    info = json.loads(qemu_img("info", "--output=json", image["disk"]))
    assert "backing-filename" not in info, "a template is flattened"
    assert info["virtual-size"] == 64 * MiB, info

    api.create("from-tpl", image="tpl-image")
    assert api.image("tpl-image")["used_by"] == 1
    assert api.call("GET", "/v1/vms/from-tpl", expect=200).value["image"] == "tpl-image"

    api.call("POST", "/v1/vms/tpl1/template", {"image": "tpl-image"},
             expect=409, code="already-exists")
    api.call("POST", "/v1/vms/tpl1/template", {"image": "default"},
             expect=409, code="already-exists")
    api.act("tpl1", "start")
    api.call("POST", "/v1/vms/tpl1/template", {"image": "tpl-other"},
             expect=409, code="invalid-state")
    api.act("tpl1", "stop", {"force": True})

    api.delete_vm("from-tpl")
    assert api.call("DELETE", "/v1/images/tpl-image", expect=200).value == {}
    api.delete_vm("tpl1")


# ---- networks ------------------------------------------------------------------------


def network_without_pid(net):
    """A network's answer without dnsmasq_pid, which changes when dnsmasq is
    restarted (vireod restarts it when it exits)."""
    return {k: v for k, v in net.items() if k != "dnsmasq_pid"}


def running_dnsmasq(api, name):
    """The PID of the network's dnsmasq once it runs (bounded wait)."""
    def pid():
        p = api.call("GET", f"/v1/networks/{name}", expect=200).value["dnsmasq_pid"]
        return p if p and pid_alive(p) else None
    return wait_for(pid, f"network {name}: dnsmasq running")


def test_networks(api, netns, run_dir):
    # default: made at start, nat on the first /24 of 10.100.0.0/16, up
    networks = api.call("GET", "/v1/networks", expect=200).value["networks"]
    default = next(n for n in networks if n["name"] == "default")
    assert default["type"] == "nat" and default["subnet"] == "10.100.0.0/24", default
    assert default["dhcp"] is True and default["bridge"] == "vbr-default"
    assert default["state"] == "active" and default["error"] is None
    assert default["leases"] == []  # the fake driver's VMs never ask for an address
    assert network_without_pid(default) == network_without_pid(
        api.call("GET", "/v1/networks/default", expect=200).value)
    assert link_exists(netns, "vbr-default")
    running_dnsmasq(api, "default")

    # nat without a subnet: the next free /24
    nat = api.call("POST", "/v1/networks", {"name": "ctr-nat", "type": "nat"}, expect=201).value
    assert network_without_pid(nat) == {
        "name": "ctr-nat", "type": "nat", "subnet": "10.100.1.0/24", "dhcp": True,
        "gateway": "10.100.1.1", "dhcp_range": {"start": "10.100.1.2", "end": "10.100.1.253"},
        "bridge": "vbr-ctr-nat", "state": "active", "error": None, "leases": [],
        "project": None}
    assert link_exists(netns, "vbr-ctr-nat")
    nat_dnsmasq = running_dnsmasq(api, "ctr-nat")
    assert (run_dir / "networks" / "ctr-nat" / "dnsmasq.conf").is_file()

    # isolated with a subnet; a long name gets a hashed bridge name; DHCP off
    iso = api.call("POST", "/v1/networks",
                   {"name": "ctr-iso", "type": "isolated", "subnet": "10.210.0.0/24"},
                   expect=201).value
    assert iso["subnet"] == "10.210.0.0/24" and iso["dhcp"] is True
    assert iso["bridge"] == "vbr-ctr-iso" and iso["type"] == "isolated"
    running_dnsmasq(api, "ctr-iso")
    quiet = api.call("POST", "/v1/networks",
                     {"name": "ctr-isolated-quiet", "type": "isolated",
                      "subnet": "10.211.0.0/29", "dhcp": False}, expect=201).value
    assert re.fullmatch(r"vbr-ctr-is-[0-9a-f]{4}", quiet["bridge"]), quiet
    assert quiet["dhcp"] is False and quiet["dnsmasq_pid"] is None
    assert quiet["gateway"] == "10.211.0.1" and "dhcp_range" not in quiet, quiet  # no DHCP
    assert link_exists(netns, quiet["bridge"])

    # vxlan: a bridge and vxVNI; without a subnet no address and no DHCP
    vx = api.call("POST", "/v1/networks",
                  {"name": "ctr-vx", "type": "vxlan", "vni": 4242,
                   "remotes": ["192.0.2.2", "192.0.2.3"]}, expect=201).value
    assert vx == {"name": "ctr-vx", "type": "vxlan", "vni": 4242, "port": 4789,
                  "remotes": ["192.0.2.2", "192.0.2.3"], "dhcp": False, "bridge": "vbr-ctr-vx",
                  "state": "active", "error": None, "dnsmasq_pid": None, "leases": [],
                  "project": None}
    assert link_exists(netns, "vbr-ctr-vx") and link_exists(netns, "vx4242")
    vx2 = api.call("POST", "/v1/networks",
                   {"name": "ctr-vx2", "type": "vxlan", "vni": 4243, "remotes": ["192.0.2.2"],
                    "local": "192.0.2.1", "port": 4790, "subnet": "10.212.0.0/24"},
                   expect=201).value
    assert vx2["local"] == "192.0.2.1" and vx2["port"] == 4790 and vx2["dhcp"] is True
    assert vx2["subnet"] == "10.212.0.0/24"
    running_dnsmasq(api, "ctr-vx2")

    # bridge: an existing host bridge; vireo makes nothing for it
    br = api.call("POST", "/v1/networks", {"name": "ctr-br", "type": "bridge",
                                           "bridge": HOST_BRIDGE}, expect=201).value
    assert br == {"name": "ctr-br", "type": "bridge", "bridge": HOST_BRIDGE, "state": "active",
                  "error": None, "dnsmasq_pid": None, "leases": [], "project": None}
    # a move to a project and back (docs/projects.md): the cluster admins'
    api.call("POST", "/v1/projects", {"name": "ctr-netp"}, expect=201)
    moved = api.call("PATCH", "/v1/networks/ctr-br", {"project": "ctr-netp"}, expect=200).value
    assert moved["project"] == "ctr-netp", moved
    api.call("PATCH", "/v1/networks/ctr-br", {"project": None}, expect=200)
    api.call("DELETE", "/v1/projects/ctr-netp", expect=200)
    for bridge in ("nosuchbr0", UPLINK_PEER):  # missing; not a bridge
        api.call("POST", "/v1/networks", {"name": "ctr-br2", "type": "bridge", "bridge": bridge},
                 expect=400, code="invalid-argument")
    api.call("POST", "/v1/networks", {"name": "ctr-br2", "type": "bridge",
                                      "bridge": "vbr-default"}, expect=409, code="already-exists")

    # vlan: on a kernel without 8021q a clear 503 naming the module
    body = {"name": "ctr-vlan", "type": "vlan", "uplink": UPLINK, "vlan_id": 42,
            "subnet": "10.214.0.0/24"}
    reply = api.call("POST", "/v1/networks", body, expect=(201, 503), code="unavailable")
    if reply.status == 503:
        assert "8021q" in reply.value["error"]["message"], reply.value
        api.call("GET", "/v1/networks/ctr-vlan", expect=404, code="not-found")
    else:
        vlan = reply.value
        assert vlan["uplink"] == UPLINK and vlan["vlan_id"] == 42 and vlan["dhcp"] is True
        assert link_exists(netns, f"{UPLINK}.42") and link_exists(netns, "vbr-ctr-vlan")
        api.call("POST", "/v1/networks", {**body, "name": "ctr-vlan2", "subnet": "10.215.0.0/24"},
                 expect=409, code="already-exists")  # the same VLAN on the same uplink
        assert api.call("DELETE", "/v1/networks/ctr-vlan", expect=200).value == {}
        assert not link_exists(netns, f"{UPLINK}.42")

    # 409: the name, an overlapping subnet, a VNI, a bridge taken
    for body in [{"name": "ctr-iso", "type": "nat"},
                 {"name": "ctr-iso2", "type": "isolated", "subnet": "10.210.0.128/25"},
                 {"name": "ctr-iso2", "type": "isolated", "subnet": "10.0.0.0/8"},
                 {"name": "ctr-vx3", "type": "vxlan", "vni": 4242, "remotes": ["192.0.2.9"]},
                 {"name": "ctr-iso2", "type": "isolated", "bridge": "vbr-ctr-nat"}]:
        api.call("POST", "/v1/networks", body, expect=409, code="already-exists")
    # 400: a bad CIDR, an unknown key
    api.call("POST", "/v1/networks", {"name": "ctr-bad", "type": "nat", "subnet": "10.216.0.0/33"},
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/networks", {"name": "ctr-bad", "type": "nat", "mtu": 9000},
             expect=400, code="invalid-argument")
    # 400: an interface vireo would make exists and is not vireo's
    api.call("POST", "/v1/networks", {"name": "ctr-bad", "type": "nat", "bridge": UPLINK_PEER},
             expect=400, code="invalid-argument")
    api.call("GET", "/v1/networks/ctr-bad", expect=404, code="not-found")

    # the list holds every network, each as GET shows it
    mine = {"default", "ctr-nat", "ctr-iso", "ctr-isolated-quiet", "ctr-vx", "ctr-vx2", "ctr-br"}
    listed = api.call("GET", "/v1/networks", expect=200).value["networks"]
    assert {n["name"] for n in listed} == mine, listed
    for net in listed:
        shown = api.call("GET", f"/v1/networks/{net['name']}", expect=200).value
        assert network_without_pid(shown) == network_without_pid(net)

    # leases, as dnsmasq writes them (a network without dnsmasq, so the
    # file stays as written): expiry, MAC, IP, hostname or *, client id
    (run_dir / "networks" / "ctr-vx" / "leases").write_text(
        "1900000000 52:54:00:AB:CD:01 10.230.0.5 guest1 01:52:54:00:ab:cd:01\n"
        "0 52:54:00:ab:cd:02 10.230.0.6 * *\n"
        "not a lease\n")
    assert api.call("GET", "/v1/networks/ctr-vx", expect=200).value["leases"] == [
        {"mac": "52:54:00:ab:cd:01", "ip": "10.230.0.5", "hostname": "guest1",
         "expires": 1900000000},
        {"mac": "52:54:00:ab:cd:02", "ip": "10.230.0.6", "hostname": None, "expires": 0}]

    # delete: the links, the rules and dnsmasq go; a host bridge stays
    for name, links in [("ctr-nat", ["vbr-ctr-nat"]), ("ctr-isolated-quiet", [quiet["bridge"]]),
                        ("ctr-vx2", ["vbr-ctr-vx2", "vx4243"]), ("ctr-br", [])]:
        assert api.call("DELETE", f"/v1/networks/{name}", expect=200).value == {}
        api.call("GET", f"/v1/networks/{name}", expect=404, code="not-found")
        api.call("DELETE", f"/v1/networks/{name}", expect=404, code="not-found")
        for link in links:
            assert not link_exists(netns, link), f"{link} outlived network {name}"
        assert not (run_dir / "networks" / name).exists()
    wait_for(lambda: not pid_alive(nat_dnsmasq), "the deleted network's dnsmasq to exit")
    assert link_exists(netns, HOST_BRIDGE)
    nft = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "tables"],
                         capture_output=True, text=True, timeout=WAIT_S, check=True).stdout
    assert "ctr-nat" not in nft, nft
    # what is left is for test_vm_nics: ctr-iso and ctr-vx


def test_vm_nics(api, netns):
    # by default one NIC on the default network
    api.create("nic1")
    vm = api.call("GET", "/v1/vms/nic1", expect=200).value
    nic = vm["nics"][0]
    assert len(vm["nics"]) == 1 and re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", nic["mac"]), vm
    assert nic == {"index": 0, "slot": 0, "mac": nic["mac"], "network": "default",
                   "model": "virtio", "tap": None, "ip": None}
    assert api.call("GET", "/v1/vms/nic1/nics", expect=200).value == {"nics": vm["nics"]}
    listed = next(v for v in api.call("GET", "/v1/vms", expect=200).value["vms"]
                  if v["name"] == "nic1")
    assert listed["nics"] == [{"mac": nic["mac"], "network": "default", "slot": 0}]  # the definition's form

    # networks: one NIC each, in order; user needs no vireo network
    reply = api.call("POST", "/v1/vms", {"name": "nic2", "networks": ["default", "user"]},
                     expect=202).value
    assert [n["network"] for n in reply["vm"]["nics"]] == ["default", "user"]
    api.wait_task(reply["task"])
    nics = api.call("GET", "/v1/vms/nic2/nics", expect=200).value["nics"]
    assert [(n["index"], n["network"], n["tap"]) for n in nics] == [
        (0, "default", None), (1, "user", None)]
    assert nics[0]["mac"] != nics[1]["mac"]
    api.call("POST", "/v1/vms", {"name": "nic3", "networks": ["no-such-network"]},
             expect=400, code="invalid-argument")
    api.call("GET", "/v1/vms/nic3", expect=404, code="not-found")

    # while the VM is active each NIC on a network has a tap; user has none
    vm = api.act("nic2", "start")
    prefix = "vt" + vm["id"][:8]
    assert [n["tap"] for n in vm["nics"]] == [prefix + "n0", None], vm["nics"]
    # hot-plug: a NIC on a network gets a tap named after its slot
    api.task_ok("POST", "/v1/vms/nic2/nics", {"network": "default"}, kind="nic-add", target="nic2")
    nics = api.call("GET", "/v1/vms/nic2/nics", expect=200).value["nics"]
    assert [n["tap"] for n in nics] == [prefix + "n0", None, prefix + "n2"], nics
    api.task_ok("DELETE", "/v1/vms/nic2/nics/2", kind="nic-remove", target="nic2")
    vm = api.act("nic2", "stop", {"force": True})
    assert [n["tap"] for n in vm["nics"]] == [None, None]

    # add: on a network, with or without a MAC
    api.task_ok("POST", "/v1/vms/nic2/nics", {"network": "ctr-iso", "mac": "52:54:00:00:c0:01"},
                kind="nic-add", target="nic2")
    api.task_ok("POST", "/v1/vms/nic2/nics", {"network": "ctr-vx"}, kind="nic-add", target="nic2")
    nics = api.call("GET", "/v1/vms/nic2/nics", expect=200).value["nics"]
    assert [(n["index"], n["network"]) for n in nics] == [
        (0, "default"), (1, "user"), (2, "ctr-iso"), (3, "ctr-vx")], nics
    assert nics[2]["mac"] == "52:54:00:00:c0:01"
    assert api.call("GET", "/v1/vms/nic2", expect=200).value["nics"] == nics
    # 409: a MAC a NIC on this host has (this VM's or another's, in any case)
    for taken in ("52:54:00:00:C0:01", nic["mac"]):
        api.call("POST", "/v1/vms/nic2/nics", {"network": "user", "mac": taken},
                 expect=409, code="already-exists")
    # 400: a bad MAC, an unknown network; 404: no such NIC
    api.call("POST", "/v1/vms/nic2/nics", {"network": "user", "mac": "03:00:00:00:00:01"},
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/vms/nic2/nics", {"network": "no-such-network"},
             expect=400, code="invalid-argument")
    api.call("DELETE", "/v1/vms/nic2/nics/4", expect=404, code="not-found")
    api.call("DELETE", "/v1/vms/nic2/nics/x", expect=400, code="invalid-argument")

    # a NIC's address is its MAC's DHCP lease on its network
    vx_leases = api.call("GET", "/v1/networks/ctr-vx", expect=200).value["leases"]
    assert vx_leases, "test_networks wrote leases for ctr-vx"
    mac = nics[3]["mac"]
    api.task_ok("DELETE", "/v1/vms/nic2/nics/3", kind="nic-remove", target="nic2")
    api.task_ok("POST", "/v1/vms/nic2/nics", {"network": "ctr-vx", "mac": "52:54:00:ab:cd:01"},
                kind="nic-add", target="nic2")
    nics = api.call("GET", "/v1/vms/nic2/nics", expect=200).value["nics"]
    assert nics[3]["ip"] == "10.230.0.5" and nics[3]["mac"] == "52:54:00:ab:cd:01", nics
    assert all(n["ip"] is None for n in nics[:3]), nics
    assert mac != "52:54:00:ab:cd:01"

    # a network a VM's NIC is on cannot be deleted, running or not
    api.call("DELETE", "/v1/networks/ctr-iso", expect=409, code="invalid-state")
    api.call("DELETE", "/v1/networks/default", expect=409, code="invalid-state")

    # remove: the later NICs move down
    api.task_ok("DELETE", "/v1/vms/nic2/nics/2", kind="nic-remove", target="nic2")
    nics = api.call("GET", "/v1/vms/nic2/nics", expect=200).value["nics"]
    assert [(n["index"], n["network"]) for n in nics] == [
        (0, "default"), (1, "user"), (2, "ctr-vx")], nics
    assert api.call("DELETE", "/v1/networks/ctr-iso", expect=200).value == {}
    assert not link_exists(netns, "vbr-ctr-iso")

    # all of them, the first included: a VM may have none
    for _ in range(3):
        api.task_ok("DELETE", "/v1/vms/nic2/nics/0", kind="nic-remove", target="nic2")
    assert api.call("GET", "/v1/vms/nic2/nics", expect=200).value == {"nics": []}
    assert api.call("DELETE", "/v1/networks/ctr-vx", expect=200).value == {}
    assert not link_exists(netns, "vx4242")

    api.delete_vm("nic1")
    api.delete_vm("nic2")
    networks = api.call("GET", "/v1/networks", expect=200).value["networks"]
    assert [n["name"] for n in networks] == ["default"], networks


# ---- snapshots -----------------------------------------------------------------------


# Snapshot bodies the document's request schemas refuse and vireod answers with 400.
INVALID_SNAPSHOT_BODIES = [
    ("POST", "/v1/vms/snap1/snapshots", {}),  # name missing
    ("POST", "/v1/vms/snap1/snapshots", {"name": "Bad_Name"}),
    ("POST", "/v1/vms/snap1/snapshots", {"name": "-x"}),
    ("POST", "/v1/vms/snap1/snapshots", {"name": "x" * 64}),
    ("POST", "/v1/vms/snap1/snapshots", {"name": 1}),
    ("POST", "/v1/vms/snap1/snapshots", {"name": "x", "memory": "yes"}),
    ("POST", "/v1/vms/snap1/snapshots", {"name": "x", "description": 5}),
    ("POST", "/v1/vms/snap1/snapshots", {"name": "x", "colour": "red"}),  # unknown key
    ("POST", "/v1/vms/snap1/snapshots/s1/revert", {"force": "yes"}),
    ("POST", "/v1/vms/snap1/snapshots/s1/revert", {"now": True}),
]


def disk_snapshots(path):
    """The internal snapshots qemu-img lists in a qcow2 file, by name."""
    info = json.loads(qemu_img("info", "--output=json", "-U", path))
    return sorted(s["name"] for s in info.get("snapshots", []))


def test_snapshots(api):
    api.create("snap1")
    base = "/v1/vms/snap1/snapshots"
    disk = api.call("GET", "/v1/vms/snap1", expect=200).value["disks"][0]["path"]
    assert api.call("GET", base, expect=200).value == {"snapshots": [], "current": None}

    def take(body):
        api.task_ok("POST", base, body, kind="snapshot-create", target="snap1")
        return api.call("GET", f"{base}/{body['name']}", expect=200).value

    def revert(name, body=None, want="succeeded"):
        reply = api.call("POST", f"{base}/{name}/revert", body, expect=202).value
        assert (reply["task"]["kind"], reply["task"]["target"]) == ("snapshot-revert", "snap1")
        return api.wait_task(reply["task"], want)

    def delete(name):
        api.task_ok("DELETE", f"{base}/{name}", kind="snapshot-delete", target="snap1")
        api.call("GET", f"{base}/{name}", expect=404, code="not-found")

    def tree():
        """{name: (parent, children, current)} and the list's current."""
        listed = api.call("GET", base, expect=200).value
        names = [s["name"] for s in listed["snapshots"]]
        assert names == sorted(names), names
        for s in listed["snapshots"]:
            assert api.call("GET", f"{base}/{s['name']}", expect=200).value == s
        assert [s["name"] for s in listed["snapshots"] if s["current"]] == (
            [listed["current"]] if listed["current"] else [])
        return ({s["name"]: (s["parent"], s["children"]) for s in listed["snapshots"]},
                listed["current"])

    # a stopped VM: qemu-img snapshot on its qcow2 disk; a root; the current one
    s1 = take({"name": "s1", "description": "fresh"})
    assert s1 == {"name": "s1", "parent": None, "children": [], "current": True,
                  "memory": False, "vm_running": False, "description": "fresh",
                  "quiesced": False, "quiesce_reason": "the VM was not running",
                  "created_at": s1["created_at"]}, s1
    assert disk_snapshots(disk) == ["s1"]
    # 409: memory needs an active VM; the name is taken
    api.call("POST", base, {"name": "s2", "memory": True}, expect=409, code="invalid-state")
    api.call("POST", base, {"name": "s1"}, expect=409, code="already-exists")
    assert tree() == ({"s1": (None, [])}, "s1")

    # a running VM: through the hypervisor (the fake driver saves nothing),
    # with and without memory; each the child of the current one
    api.act("snap1", "start")
    s2 = take({"name": "s2", "memory": True})
    assert (s2["parent"], s2["memory"], s2["vm_running"], s2["description"]) == (
        "s1", True, True, None), s2
    s3 = take({"name": "s3", "memory": False, "description": "disks only"})
    assert (s3["parent"], s3["memory"], s3["vm_running"], s3["current"]) == (
        "s2", False, True, True), s3
    assert tree() == ({"s1": (None, ["s2"]), "s2": ("s1", ["s3"]), "s3": ("s2", [])}, "s3")
    api.call("POST", base, {"name": "s3", "memory": True}, expect=409, code="already-exists")

    # revert of a running VM: 409 without force; with it a memory snapshot is
    # loaded and the VM carries on running
    for body in (None, {}, {"force": False}):
        api.call("POST", f"{base}/s2/revert", body, expect=409, code="invalid-state")
    assert tree()[1] == "s3"
    revert("s2", {"force": True})
    assert_vm_state(api.call("GET", "/v1/vms/snap1", expect=200).value, "running")
    assert tree()[1] == "s2"
    take({"name": "s4", "memory": True})  # a second child of s2
    assert tree() == ({"s1": (None, ["s2"]), "s2": ("s1", ["s3", "s4"]),
                       "s3": ("s2", []), "s4": ("s2", [])}, "s4")

    # delete a middle snapshot: its children move up to its parent
    delete("s2")
    assert tree() == ({"s1": (None, ["s3", "s4"]), "s3": ("s1", []), "s4": ("s1", [])}, "s4")

    # revert of a running VM to a snapshot without memory: the VM is stopped
    # and its disks reverted
    revert("s1", {"force": True})
    assert_vm_state(api.call("GET", "/v1/vms/snap1", expect=200).value, "stopped")
    assert tree()[1] == "s1"
    assert disk_snapshots(disk) == ["s1"]

    # a stopped VM: a memory snapshot cannot be loaded (refused at once)
    api.call("POST", f"{base}/s4/revert", {}, expect=409, code="invalid-state")
    assert tree()[1] == "s1"
    # one without memory needs no force
    revert("s1")
    s5 = take({"name": "s5"})
    assert (s5["parent"], s5["vm_running"], s5["memory"]) == ("s1", False, False), s5
    assert disk_snapshots(disk) == ["s1", "s5"]
    # deleting the current snapshot makes its parent current; a leaf goes from the disk
    delete("s5")
    assert disk_snapshots(disk) == ["s1"]
    assert tree() == ({"s1": (None, ["s3", "s4"]), "s3": ("s1", []), "s4": ("s1", [])}, "s1")
    # deleting a root: its children become roots; nothing is current
    delete("s1")
    assert disk_snapshots(disk) == []
    assert tree() == ({"s3": (None, []), "s4": (None, [])}, None)

    # 404: no such VM (before the body is looked at) or snapshot
    for method, path, body in [
            ("GET", "/v1/vms/nope/snapshots", None),
            ("POST", "/v1/vms/nope/snapshots", {"name": "x"}),
            ("POST", "/v1/vms/nope/snapshots", {}),
            ("GET", "/v1/vms/nope/snapshots/s3", None),
            ("DELETE", "/v1/vms/nope/snapshots/s3", None),
            ("POST", "/v1/vms/nope/snapshots/s3/revert", {"force": True}),
            ("POST", "/v1/vms/nope/snapshots/s3/revert", {"now": True}),
            ("GET", f"{base}/nope", None), ("GET", f"{base}/Bad_Name", None),
            ("DELETE", f"{base}/nope", None), ("DELETE", f"{base}/s1", None),
            ("POST", f"{base}/nope/revert", None), ("POST", f"{base}/s2/revert", {"force": True})]:
        api.call(method, path, body, expect=404, code="not-found")
    # 405: the path exists, the method does not
    for method, path in [("PUT", base), ("DELETE", base), ("PATCH", f"{base}/s3"),
                         ("POST", f"{base}/s3"), ("GET", f"{base}/s3/revert")]:
        api.call_unrouted(method, path, expect=405, response="MethodNotAllowed")
    # 400: bodies the document refuses
    for method, path, body in INVALID_SNAPSHOT_BODIES:
        op = api.doc["paths"][api.template_for(path)][method.lower()]
        schema = resolve(api.doc, op["requestBody"])["content"]["application/json"]["schema"]
        assert schema_errors(api.doc, schema, body), (
            f"{method} {path} {body}: vireod refuses it but the document allows it")
        api.call(method, path, body, expect=400, code="invalid-argument")
    api.call("POST", base, raw=b'{"name":', headers={"Content-Type": "application/json"},
             expect=400, code="invalid-argument")
    api.call("POST", base, raw=b'{"name": "x"}', headers={"Content-Type": "text/plain"},
             expect=415, code="unsupported-media-type")
    # 400: a VM with a raw disk cannot be snapshotted
    api.task_ok("POST", "/v1/vms/snap1/disks", {"size_bytes": MiB, "format": "raw"},
                kind="disk-add", target="snap1")
    api.call("POST", base, {"name": "s6"}, expect=400, code="invalid-argument")
    api.call("GET", f"{base}/s6", expect=404, code="not-found")

    tasks = api.call("GET", "/v1/tasks", expect=200).value["tasks"]
    kinds = {t["kind"] for t in tasks if t["target"] == "snap1"}
    assert {"snapshot-create", "snapshot-revert", "snapshot-delete"} <= kinds, kinds

    # a VM's snapshots go with it: a new VM of the same name has none
    api.delete_vm("snap1")
    api.create("snap1")
    assert api.call("GET", base, expect=200).value == {"snapshots": [], "current": None}
    api.delete_vm("snap1")


# ---- backups -------------------------------------------------------------------------


# Backup bodies the document's request schemas refuse and vireod answers with 400.
INVALID_BACKUP_BODIES = [
    ("POST", "/v1/vms/bk1/backups", {"keep_last": -1}),
    ("POST", "/v1/vms/bk1/backups", {"keep_last": 1001}),
    ("POST", "/v1/vms/bk1/backups", {"incremental": "yes"}),
    ("POST", "/v1/vms/bk1/backups", {"pool": 5}),
    ("POST", "/v1/vms/bk1/backups", {"target": "backup"}),  # unknown key
    ("POST", "/v1/backups/{id}/restore", {"as": 1}),
    ("POST", "/v1/backups/{id}/restore", {"name": "x"}),
    ("POST", "/v1/backups/{id}/verify", {"deep": True}),
    ("POST", "/v1/vms/bk1/backups", {"bwlimit_mib": 0}),
    ("POST", "/v1/vms/bk1/backups", {"bwlimit_mib": 1048577}),
    ("POST", "/v1/vms/bk1/backups", {"bwlimit_mib": "10"}),
    ("POST", "/v1/vms/bk1/backups", {"bwlimit_mib": 1.5}),
    ("POST", "/v1/backups/{id}/restore", {"bwlimit_mib": -1}),
    ("POST", "/v1/backups/{id}/verify", {"bwlimit_mib": None}),
]


def test_backups(api, state_dir):
    """A stopped (fake) VM is backed up through qemu-storage-daemon for real,
    and so is a running one (the fake VM holds no image open)."""
    api.create("bk1")
    assert api.call("GET", "/v1/backups", expect=200).value == []

    def take(body, vm="bk1"):
        reply = api.task_ok("POST", f"/v1/vms/{vm}/backups", body, kind="backup-create",
                            target=vm)
        task = api.call("GET", f"/v1/tasks/{reply['task']['id']}", expect=200).value
        return api.call("GET", f"/v1/backups/{task['message']}", expect=200).value

    full = take(None)
    assert (full["kind"], full["parent"], full["reason"], full["pool"], full["vm"],
            full["vm_running"], full["last_verify"]) == (
        "full", None, None, "backup", "bk1", False, None), full
    assert full["spec"]["name"] == "bk1" and full["disks"][0]["file"] == "disk0.qcow2"
    assert full["stored_bytes"] == sum(d["stored_bytes"] for d in full["disks"])
    pool = api.call("GET", "/v1/pools/backup", expect=200).value
    assert (pool["type"], pool["volumes"]) == ("backup", 0), pool
    assert (Path(pool["path"]) / full["id"] / "backup.json").is_file()

    api.act("bk1", "start")
    inc = take({"incremental": True, "keep_last": 5, "bwlimit_mib": 1024})
    assert (inc["kind"], inc["parent"], inc["vm_running"]) == ("incremental", full["id"], True)
    listed = api.call("GET", "/v1/backups?vm=bk1", expect=200).value
    assert [b["id"] for b in listed] == [full["id"], inc["id"]]
    assert all("spec" not in b for b in listed)
    assert api.call("GET", "/v1/backups?vm=nope", expect=200).value == []

    # verify: the task, and its result kept with the backup
    api.task_ok("POST", f"/v1/backups/{inc['id']}/verify", {"bwlimit_mib": 1024},
                kind="backup-verify", target=inc["id"])
    checked = api.call("GET", f"/v1/backups/{inc['id']}", expect=200).value["last_verify"]
    assert (checked["ok"], checked["files"], checked["problems"]) == (True, 2, []), checked

    # restore into a new VM; over the original only while it is stopped
    api.task_ok("POST", f"/v1/backups/{inc['id']}/restore",
                {"as": "bk1-copy", "bwlimit_mib": 1024}, kind="backup-restore",
                target=inc["id"])
    copy = api.call("GET", "/v1/vms/bk1-copy", expect=200).value
    assert copy["state"] == "defined" and copy["disks"][0]["volume"].startswith("default/")
    api.call("POST", f"/v1/backups/{inc['id']}/restore", {"as": "bk1-copy"}, expect=409,
             code="already-exists")
    api.call("POST", f"/v1/backups/{inc['id']}/restore", None, expect=409, code="invalid-state")
    api.call("POST", f"/v1/backups/{inc['id']}/restore", {"as": "Bad_Name"}, expect=400,
             code="invalid-argument")
    api.call("POST", f"/v1/backups/{inc['id']}/restore", {"as": "x", "pool": "nope"},
             expect=404, code="not-found")
    api.act("bk1", "stop")
    api.task_ok("POST", f"/v1/backups/{full['id']}/restore", {}, kind="backup-restore",
                target=full["id"])
    api.delete_vm("bk1-copy")

    # pools: a dir pool takes no backups, a backup pool no volumes, and a
    # backup pool holding backups stays
    api.call("POST", "/v1/vms/bk1/backups", {"pool": "default"}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/vms/bk1/backups", {"pool": "nope"}, expect=404, code="not-found")
    api.call("POST", "/v1/pools/backup/volumes", {"name": "v", "size_bytes": MiB}, expect=400,
             code="invalid-argument")
    api.call("DELETE", "/v1/pools/backup", expect=409, code="invalid-state")

    # delete the parent: the child is rebased and stands alone
    api.task_ok("DELETE", f"/v1/backups/{full['id']}", kind="backup-delete", target=full["id"])
    api.call("GET", f"/v1/backups/{full['id']}", expect=404, code="not-found")
    rebased = api.call("GET", f"/v1/backups/{inc['id']}", expect=200).value
    assert (rebased["kind"], rebased["parent"]) == ("full", None), rebased

    # 404: no such VM (before the body) or backup; 400: not a backup id
    for method, path, body in [
            ("POST", "/v1/vms/nope/backups", {}), ("POST", "/v1/vms/nope/backups", {"x": 1}),
            ("GET", f"/v1/backups/{full['id']}", None),
            ("DELETE", f"/v1/backups/{full['id']}", None),
            ("POST", f"/v1/backups/{full['id']}/restore", {}),
            ("POST", f"/v1/backups/{full['id']}/verify", None)]:
        api.call(method, path, body, expect=404, code="not-found")
    for method, path, body in [("GET", "/v1/backups/Bad_Id", None),
                               ("DELETE", "/v1/backups/..", None),
                               ("POST", "/v1/backups/a.b/verify", None),
                               ("POST", "/v1/backups/-x/restore", {})]:
        api.call(method, path, body, expect=400, code="invalid-argument")
    # 405: the path exists, the method does not
    for method, path in [("PUT", "/v1/backups"), ("POST", f"/v1/backups/{inc['id']}"),
                         ("GET", f"/v1/backups/{inc['id']}/verify"),
                         ("GET", "/v1/vms/bk1/backups")]:
        api.call_unrouted(method, path, expect=405, response="MethodNotAllowed")
    # 400: bodies the document refuses
    for method, path, body in INVALID_BACKUP_BODIES:
        path = path.replace("{id}", inc["id"])
        op = api.doc["paths"][api.template_for(path)][method.lower()]
        schema = resolve(api.doc, op["requestBody"])["content"]["application/json"]["schema"]
        assert schema_errors(api.doc, schema, body), (
            f"{method} {path} {body}: vireod refuses it but the document allows it")
        api.call(method, path, body, expect=400, code="invalid-argument")

    api.task_ok("DELETE", f"/v1/backups/{inc['id']}", kind="backup-delete", target=inc["id"])
    assert api.call("GET", "/v1/backups", expect=200).value == []
    assert [p.name for p in Path(pool["path"]).iterdir()] == []
    api.delete_vm("bk1")


def test_events_and_revisions(api):
    """GET /v1/events (a finite stream with follow=false), ETag on reads and
    412 on a stale If-Match."""
    api.create("rev1")
    reply = api.call("GET", "/v1/events?since=0&follow=false", expect=200)
    assert reply.media_type == "text/event-stream"
    blocks = [b for b in reply.value.split("\n\n") if b.strip()]
    assert blocks[0].startswith(": vireo events after revision 0")
    events = [dict(line.split(": ", 1) for line in b.split("\n")) for b in blocks[1:]]
    assert events and all(set(e) == {"id", "event", "data"} for e in events)
    data = [json.loads(e["data"]) for e in events]
    # "R", or "R.k" for all but the last event of a multi-key transaction.
    assert [d["rev"] for d in data] == [int(e["id"].split(".")[0]) for e in events]
    assert {"vm", "pool", "volume"} <= {d["kind"] for d in data}
    last = int(events[-1]["id"])  # the last event of a revision has the plain id
    reply = api.call("GET", f"/v1/events?kind=vm&since={last}&follow=false", expect=200)
    assert reply.value.strip() == f": vireo events after revision {last}"
    api.call("GET", "/v1/events?kind=nope", expect=400, code="invalid-argument")
    api.call("GET", "/v1/events?since=x", expect=400, code="invalid-argument")

    vm = api.call("GET", "/v1/vms/rev1", expect=200)
    tag = vm.headers["etag"]
    assert int(tag.strip('"')) == max(d["rev"] for d in data if d["kind"] == "vm" and
                                      (d["object"] or {}).get("spec", {}).get("name") == "rev1")
    api.call("PATCH", "/v1/vms/rev1", {"vcpus": 2}, headers={"If-Match": '"1"'}, expect=412,
             code="precondition-failed")
    api.call("POST", "/v1/vms/rev1/start", headers={"If-Match": '"1"'}, expect=412,
             code="precondition-failed")
    edited = api.call("PATCH", "/v1/vms/rev1", {"vcpus": 2}, headers={"If-Match": tag},
                      expect=200)
    assert edited.headers["etag"] != tag
    pool = api.call("GET", "/v1/pools/default", expect=200)
    other = f'"{int(pool.headers["etag"].strip(chr(34))) + 1}"'  # not its revision
    api.call("DELETE", "/v1/pools/default", headers={"If-Match": other}, expect=412,
             code="precondition-failed")
    assert api.call("GET", "/v1/networks/default", expect=200).headers["etag"]


def test_access_routes(api):
    # Users and tokens over the Unix socket (root); sessions and roles over
    # HTTPS: tests/e2e/test_access.py.
    u = api.call("POST", "/v1/users", {"name": "ann", "role": "viewer",
                                       "password": "a long password"}, expect=201).value
    assert u["name"] == "ann" and u["role"] == "viewer"
    api.call("POST", "/v1/users", {"name": "ann", "role": "viewer", "password": "a long one"},
             expect=409, code="already-exists")
    api.call("POST", "/v1/users", {"name": "bob", "role": "king", "password": "a long one"},
             expect=400, code="invalid-argument")
    api.call("POST", "/v1/users", {"name": "bob", "role": "viewer", "password": "short"},
             expect=400, code="invalid-argument")
    assert [x["name"] for x in api.call("GET", "/v1/users", expect=200).value] == ["ann"]
    api.call("POST", "/v1/users/ann/password", {"password": "another long one"}, expect=200)
    api.call("POST", "/v1/users/nope/password", {"password": "another long one"}, expect=404,
             code="not-found")
    t = api.call("POST", "/v1/tokens", {"role": "viewer", "user": "ann", "expires": "1d"},
                 expect=201).value
    assert t["secret"].startswith("vireo_" + t["id"])
    api.call("POST", "/v1/tokens", {"role": "admin", "user": "ann"}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/tokens", {"role": "viewer", "user": "nope"}, expect=404,
             code="not-found")
    api.call("POST", "/v1/tokens", {"role": "viewer", "expires": "soon"}, expect=400,
             code="invalid-argument")
    listed = api.call("GET", "/v1/tokens", expect=200).value
    assert [x["id"] for x in listed] == [t["id"]] and "secret" not in listed[0]
    api.call("DELETE", f"/v1/tokens/{t['id']}", expect=200)
    api.call("DELETE", f"/v1/tokens/{t['id']}", expect=404, code="not-found")
    assert api.call("GET", "/v1/whoami", expect=200).value == {"principal": "root",
                                                               "role": "admin", "grants": {}}
    api.call("POST", "/v1/login", {"user": "ann", "password": "another long one"}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/logout", {}, expect=200)
    api.call("DELETE", "/v1/users/ann", expect=200)
    api.call("DELETE", "/v1/users/ann", expect=404, code="not-found")


def test_schedules(api):
    # Scheduled snapshots and backups (docs/schedules.md; runs:
    # tests/e2e/test_schedules.py).
    api.create("sched1", memory_mib=64)
    body = {"name": "nightly", "action": "snapshot", "vm": "sched1", "every": "daily",
            "window": "01:00-03:00", "keep_daily": 7}
    s = api.call("POST", "/v1/schedules", body, expect=201).value
    assert s["grace_s"] == 7200 and s["next_due"] is not None
    api.call("POST", "/v1/schedules", body, expect=409, code="already-exists")
    api.call("POST", "/v1/schedules", {**body, "name": "b", "at": "61 * * * *"}, expect=400,
             code="invalid-argument")
    api.call("POST", "/v1/schedules", {**body, "name": "b", "vm": "nope"}, expect=404,
             code="not-found")
    assert [x["name"] for x in api.call("GET", "/v1/schedules", expect=200).value["schedules"]] \
        == ["nightly"]
    api.call("GET", "/v1/schedules/nightly", expect=200)
    api.call("GET", "/v1/schedules/nope", expect=404, code="not-found")
    api.call("PATCH", "/v1/schedules/nightly", {"at": "0 3 * * *", "enabled": False}, expect=200)
    api.call("PATCH", "/v1/schedules/nightly", {"at": "bad"}, expect=400, code="invalid-argument")
    api.call("PATCH", "/v1/schedules/nightly", {}, expect=412, code="precondition-failed",
             headers={"If-Match": '"1"'})
    run = api.call("POST", "/v1/schedules/nightly/run", expect=202).value
    assert run["run_now"] == 1 and len(run["tasks"]) == 1
    api.wait_task(run["tasks"][0])
    detail = api.call("GET", "/v1/schedules/nightly", expect=200).value
    assert detail["runs"][0]["last_run"]["trigger"] == "run-now"
    assert detail["made"][0]["kind"] == "snapshot"
    api.call("POST", "/v1/schedules/nope/run", expect=404, code="not-found")
    api.call("DELETE", "/v1/schedules/nightly", expect=200)
    api.call("DELETE", "/v1/schedules/nightly", expect=404, code="not-found")
    api.delete_vm("sched1")


def test_vm_import_route(api, tmp_path):
    """POST /v1/vm-imports: a libvirt domain XML with one small disk and a
    CD-ROM with an ISO becomes a VM (202 with the plan, then the task); a
    bad source is a 400."""
    iso = tmp_path / "lv.iso"
    iso.write_bytes(b"\0" * 32769 + b"CD001" + b"\0" * 2042)
    disk = tmp_path / "lv.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1M"], check=True)
    xml = tmp_path / "lv.xml"
    xml.write_text("<domain><name>imp1</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
                   f"<devices><disk type='file' device='disk'><source file='{disk}'/></disk>"
                   f"<disk type='file' device='cdrom'><source file='{iso}'/></disk>"
                   "<sound model='ich9'/></devices></domain>")
    reply = api.task_ok("POST", "/v1/vm-imports", {"source": "libvirt", "path": str(xml)},
                        kind="vm-import", target="imp1")
    assert reply["import"]["warnings"] == ["device <sound> is not imported"], reply
    assert reply["import"]["cdrom"] == {"source": str(iso), "pool": "default"}, reply
    vm = api.call("GET", "/v1/vms/imp1", expect=200).value
    assert vm["memory_mib"] == 64 and vm["disks"][0]["volume"] == "default/imp1-disk0", vm
    assert vm["cdrom"] == {"volume": "default/imp1-cdrom0"}, vm
    api.task_ok("DELETE", "/v1/vms/imp1", kind="delete", target="imp1")
    api.delete_volume("default/imp1-cdrom0")
    api.call("POST", "/v1/vm-imports", {"source": "vmx", "path": str(xml)}, expect=400,
             code="invalid-argument")


def test_every_operation_was_exercised(api, spec, request):
    """Runs last: every documented operation was called by the tests above."""
    module_tests = {name for name in dir(request.module) if name.startswith("test_")}
    selected = {item.name for item in request.session.items if item.module is request.module}
    if selected != module_tests:
        pytest.skip("only meaningful when the whole module runs")
    if request.session.testsfailed:
        pytest.skip("an earlier test failed before exercising everything")
    missing = documented_routes(spec) - api.seen
    assert not missing, f"operations no test exercised: {sorted(missing)}"
