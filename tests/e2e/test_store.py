"""The store on a real vireod: a state directory written by an older vireo
(store schema 1: a revision per document) keeps working after the upgrade,
and the changes made after it (conditional writes at the migrated
revisions) persist across a restart."""

import os
import sqlite3
import subprocess

from vireo_harness import Daemon

MiB = 1 << 20


def write_v1_state(state_dir, extra_dir):
    """vireo.db as vireo before the store interface made it, holding a pool
    outside the state dir with one volume, and the default network marked
    as made (so none is created)."""
    pools = os.path.join(state_dir, "pools", "default")
    os.makedirs(pools)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                    os.path.join(extra_dir, "old.qcow2"), str(8 * MiB)], check=True)
    db = sqlite3.connect(os.path.join(state_dir, "vireo.db"))
    db.executescript(f"""
        PRAGMA journal_mode=WAL;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE documents (key TEXT PRIMARY KEY, rev INTEGER NOT NULL, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO documents VALUES
          ('pools/default', 1, '{{"created_at":1,"name":"default","path":"{pools}","type":"dir"}}'),
          ('pools/extra', 4, '{{"created_at":1,"name":"extra","path":"{extra_dir}","type":"dir"}}'),
          ('volumes/extra/old', 2,
           '{{"created_at":1,"format":"qcow2","name":"old","pool":"extra","shareable":false}}'),
          ('settings/default-network', 1, '{{"made":true}}');
    """)
    db.commit()
    db.close()


def test_schema_v1_state_dir_keeps_working(tmp_path):
    extra = str(tmp_path / "extra")
    os.makedirs(extra)
    d = Daemon(driver="fake", before_start=lambda state: write_v1_state(state, extra))
    try:
        pools = {p["name"] for p in d.api("GET", "/v1/pools")["pools"]}
        assert {"default", "extra"} <= pools
        vol = d.api("GET", "/v1/pools/extra/volumes/old")
        assert vol["format"] == "qcow2"

        # Writes at the migrated revisions: an update, a delete, a create.
        d.api("PATCH", "/v1/pools/extra/volumes/old", {"shareable": True})
        assert d.api("GET", "/v1/pools/extra/volumes/old")["shareable"] is True
        d.task_ok("POST", "/v1/pools/extra/volumes", {"name": "new", "size_bytes": 8 * MiB})
        d.task_ok("DELETE", "/v1/pools/extra/volumes/old")
        assert not os.path.exists(os.path.join(extra, "old.qcow2"))

        # The database is schema 2 now and the changes persist.
        d.stop()
        d.start()
        names = {v["name"] for v in d.api("GET", "/v1/volumes?pool=extra")["volumes"]}
        assert names == {"new"}
        d.task_ok("DELETE", "/v1/pools/extra/volumes/new")
        d.api("DELETE", "/v1/pools/extra")
        assert "extra" not in {p["name"] for p in d.api("GET", "/v1/pools")["pools"]}
        db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
        try:
            version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            assert version[0] == "2"
        finally:
            db.close()
    finally:
        d.cleanup()
