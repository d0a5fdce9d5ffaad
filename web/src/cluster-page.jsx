// cluster-page.jsx: the cluster as `vireo cluster show` prints it (etcd
// members and their health, quorum, the manager, the hosts with their state
// and versions, etcd's version) and DRS (docs/drs.md): its mode and level
// (admin may change them), the threshold, the last round's imbalance and
// its recommendations, each with its numbers and an Apply button (admin:
// the migration task's progress shows here and in the task log), and HA's
// restart limit (ha-settings.jsx; admin may change it; a standalone host
// has it on its own page, host-page.jsx). The hosts
// come with the event stream's host events (main.jsx: records, member
// documents, the manager role), and are read again when this page's read
// finds a host added or removed or the manager moved (a second chance: an
// event lost in a reconnect); etcd's members and DRS have no events: read again
// CLUSTER_POLL_MS after the last read ended while the page is shown
// (poll-kit.js), and at once after a change here.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api.js';
import { StateIcon } from './tree.jsx';
import { pollWhileShown } from './poll-kit.js';
import { useTask, TaskLine, denial } from './task-kit.jsx';
import { HaSettings } from './ha-settings.jsx';

// vireod asks etcd for its members' health at most every few seconds
// (cluster-show.c) and DRS rounds run every 5 s (docs/drs.md).
const CLUSTER_POLL_MS = 10000;

const num = (v, digits = 3) => (typeof v === 'number' ? v.toFixed(digits) : '–');

// As `vireo cluster show` says it: the health is asked of etcd at most
// every 5 s, so its age is shown.
const healthLine = (cluster) => {
  const members = cluster.etcd_members || [];
  const healthy = members.filter((m) => m.healthy).length;
  return `${healthy} of ${members.length} members healthy (checked ${Math.floor(cluster.etcd_health_age_ms / 1000)} s ago)`;
};

function Members({ cluster, hosts }) {
  return (
    <>
      <dl class="summary">
        <dt>Cluster</dt><dd>{cluster.cluster.id}</dd>
        <dt>Quorum</dt><dd data-field="quorum">{cluster.quorum ? 'yes' : 'NO'}</dd>
        <dt>Manager</dt><dd data-field="manager">{cluster.manager || 'none'}</dd>
        <dt>etcd</dt><dd>{cluster.etcd_version || '–'}{cluster.etcd_error ? ` (${cluster.etcd_error})` : ''}</dd>
        {typeof cluster.etcd_health_age_ms === 'number' && (
          <><dt>etcd health</dt><dd data-field="etcd-health">{healthLine(cluster)}</dd></>
        )}
      </dl>
      <h2>Hosts</h2>
      <table class="vm-table" data-cluster-hosts>
        <thead><tr><th>Host</th><th>State</th><th>Address</th><th>vireo</th><th>Manager</th></tr></thead>
        <tbody>
          {hosts.map((h) => (
            <tr key={h.id} data-host-row={h.name}>
              <td><a href={`#/host/${h.name}`}>{h.name}</a></td>
              <td><StateIcon state={h.state} /> {h.state}</td>
              <td>{h.address || '–'}</td><td>{h.version || '–'}</td><td>{h.manager ? 'yes' : ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>etcd members</h2>
      <table class="vm-table" data-etcd-members>
        <thead><tr><th>Member</th><th>Voting</th><th>Health</th><th>URL</th></tr></thead>
        <tbody>
          {(cluster.etcd_members || []).map((m) => (
            <tr key={m.id}>
              <td>{m.name}</td><td>{m.voting ? 'voting' : 'learner'}</td>
              <td data-healthy={m.healthy ? '1' : '0'}>{m.healthy ? 'healthy' : 'UNHEALTHY'}</td>
              <td>{m.client_url || ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function DrsSettings({ drs, canAdmin, role, onSet }) {
  return (
    <div class="drs-settings">
      <label>Mode{' '}
        <select name="drs-mode" value={drs.mode} disabled={!canAdmin} title={denial(canAdmin, 'admin', role)}
                onChange={(e) => onSet({ mode: e.target.value })}>
          {['off', 'manual', 'auto'].map((m) => <option key={m} value={m}>{m}</option>)}
        </select>
      </label>{' '}
      <label>Level{' '}
        <select name="drs-level" value={String(drs.level)} disabled={!canAdmin}
                title={denial(canAdmin, 'admin', role)} onChange={(e) => onSet({ level: Number(e.target.value) })}>
          {[1, 2, 3, 4, 5].map((l) => <option key={l} value={String(l)}>{l}</option>)}
        </select>
      </label>{' '}
      <span data-field="threshold">threshold {num(drs.threshold)}</span>
      {drs.status && (
        <span data-field="imbalance">, imbalance {num(drs.status.imbalance)}
          {drs.status.skipped ? ` (skipped: ${drs.status.skipped})` : ''}</span>
      )}
      {drs.moving && <span data-field="moving">, moving {drs.moving.vm} to {drs.moving.to}</span>}
    </div>
  );
}

function Recommendations({ recs, canAdmin, role, busy, onApply }) {
  if (!recs.length) return <p class="note" data-no-recommendations>No recommendations.</p>;
  return (
    <table class="vm-table" data-recommendations>
      <thead>
        <tr><th>VM</th><th>From</th><th>To</th><th>Imbalance</th><th>CPU (cores)</th><th>Memory</th>
          <th>Cost</th><th /></tr>
      </thead>
      <tbody>
        {recs.map((r) => (
          <tr key={r.id} data-recommendation={r.id} data-vm={r.vm}>
            <td>{r.vm}</td><td>{r.from}</td><td>{r.to}</td>
            <td>{num(r.imbalance_before)} → {num(r.imbalance_after)}</td>
            <td>{num(r.cpu, 2)}</td>
            <td>{r.mem_used_mib !== undefined ? `${r.mem_used_mib} MiB (${r.mem_source || '?'})` : '–'}</td>
            <td>{typeof r.cost_s === 'number' ? `${r.cost_s.toFixed(1)} s` : '–'}</td>
            <td>
              <button data-action="apply" disabled={!canAdmin || busy} title={denial(canAdmin, 'admin', role)}
                      onClick={() => onApply(r)}>Apply</button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// The hosts there are and which is the manager: what no host event says
// (a host removed; the role moved while every host stays online).
const roster = (hosts) => hosts.map((h) => `${h.id}${h.manager ? ' manager' : ''}`).sort().join();

export function ClusterPage({ hosts, who, tasks, onError, reloadHosts }) {
  const [cluster, setCluster] = useState(null);
  const [drs, setDrs] = useState(null);
  const [recs, setRecs] = useState([]);
  const canAdmin = who.role === 'admin';
  const hostsNow = useRef(hosts);
  hostsNow.current = hosts;

  async function read() {
    try {
      const c = await api('GET', '/v1/cluster');
      setCluster(c);
      if (!c.cluster) return true;
      // The list the tree and this page show read again when this answer's
      // hosts are others than its own.
      if (roster(c.hosts || []) !== roster(hostsNow.current)) reloadHosts();
      const [d, r] = await Promise.all([api('GET', '/v1/cluster/drs'), api('GET', '/v1/cluster/recommendations')]);
      setDrs(d);
      setRecs(r.recommendations || []);
      return true;
    } catch (e) {
      onError(e.message);
      return false;
    }
  }
  const { run, task, pending, busy } = useTask(tasks, onError, read);
  useEffect(() => pollWhileShown(read, { ms: CLUSTER_POLL_MS, setError: onError }), []);

  const set = (change) => run('DRS settings', 'PUT', '/v1/cluster/drs', change);
  const apply = (r) => run(`move ${r.vm} to ${r.to}`, 'POST',
                           `/v1/cluster/recommendations/${encodeURIComponent(r.id)}/apply`, {});

  if (!cluster) return <p class="loading">Loading…</p>;
  if (!cluster.cluster) {
    const self = hosts.find((h) => h.local);
    return (
      <article>
        <h1>Cluster</h1>
        <p data-standalone>This host is standalone (not in a cluster){self && <>: its HA restart limit is on{' '}
          <a href={`#/host/${self.name}`}>its page</a></>}.</p>
      </article>
    );
  }
  return (
    <article class="cluster-page" aria-labelledby="cluster-title">
      <h1 id="cluster-title">Cluster</h1>
      <Members cluster={cluster} hosts={hosts} />
      <h2>DRS</h2>
      {drs && <DrsSettings drs={drs} canAdmin={canAdmin} role={who.role} onSet={set} />}
      <TaskLine pending={pending} task={task} attrs={{ 'data-apply-task': task && task.state }} />
      <Recommendations recs={recs} canAdmin={canAdmin} role={who.role} busy={busy} onApply={apply} />
      <h2>HA restart limit</h2>
      <HaSettings canAdmin={canAdmin} role={who.role} onError={onError} />
    </article>
  );
}
