// host-page.jsx: one host of the cluster: its state, address, accelerator,
// CPU model, versions, its load (CPU, memory, VMs), graphs of its metrics
// (graphs.jsx), its VMs, its maintenance switch and Evacuate… (admin:
// entering maintenance or evacuating asks first, with the memory check
// offered, and starts the evacuation task, whose progress and report show
// here (host-evacuate.jsx); leaving moves nothing back). Nothing is read
// here but the graphs: the host's record (state, maintenance, load) comes
// with the event stream's host events, its VMs with the VM events
// (main.jsx). The page of the host serving the UI reads GET /v1/cluster
// once when it opens: a standalone host's page has HA's restart limit
// (ha-settings.jsx, read while shown), which a cluster's hosts find on the
// cluster page.
import { useEffect, useState } from 'preact/hooks';
import { api, formatBytes } from './api.js';
import { StateIcon } from './tree.jsx';
import { lazyView } from './lazy.jsx';
import { useTask, TaskLine, denial } from './task-kit.jsx';
import { EvacuateDialog, EvacuationReport } from './host-evacuate.jsx';
import { HaSettings } from './ha-settings.jsx';

const Graphs = lazyView(() => import('./graphs.jsx'), 'Graphs');

const percent = (part, whole) => (whole ? `${Math.round((100 * part) / whole)}%` : '–');

function Load({ host }) {
  const cpu = typeof host.load === 'number' ? `${Math.round(host.load * 100)}% busy` : '–';
  return (
    <dl class="summary load" data-load>
      <dt>CPU</dt>
      <dd data-field="cpu-load">{cpu} of {host.cpus ?? '–'} CPUs
        {host.committed_vcpus !== undefined && ` (${host.committed_vcpus} vCPUs given to VMs)`}</dd>
      <dt>Memory</dt>
      <dd data-field="memory-load">
        {host.memory_mib ? `${formatBytes(host.memory_used_mib * 1048576)} used of ${formatBytes(host.memory_mib * 1048576)} (${percent(host.memory_used_mib, host.memory_mib)})` : '–'}
        {host.committed_memory_mib !== undefined && `, ${formatBytes(host.committed_memory_mib * 1048576)} given to VMs`}
      </dd>
      <dt>VMs</dt>
      <dd data-field="vm-count">{host.vms_running ?? 0} running of {host.vms ?? 0}</dd>
    </dl>
  );
}

// Whether this page's host is a standalone host (this host, in no cluster).
function useStandalone(host, onError) {
  const [standalone, setStandalone] = useState(false);
  useEffect(() => {
    if (!host.local) return undefined;
    let gone = false;
    api('GET', '/v1/cluster').then((c) => { if (!gone) setStandalone(!c.cluster); },
                                   (e) => onError(e.message));
    return () => { gone = true; };
  }, [host.id, host.local]);
  return standalone;
}

export function HostPage({ host, vms, who, tasks, onError }) {
  const canAdmin = who.role === 'admin';
  // The switch's change and the moved VMs arrive as events: nothing to read when the task ends.
  const { run, task, pending, busy } = useTask(tasks, onError, () => {});
  const [asking, setAsking] = useState(null); // 'maintenance' or 'evacuate': its dialog is open
  const inMaintenance = Boolean(host.maintenance);
  const mine = vms.filter((v) => v.host === host.name);
  const qemu = host.qemu_version;
  const path = `/v1/hosts/${encodeURIComponent(host.name)}`;
  // Its own vireod moves its VMs: online, or in maintenance with VMs that
  // stayed (Evacuate… moves what can move now, as `maintenance on` again).
  const canMove = host.state === 'online' || host.state === 'maintenance';
  const standalone = useStandalone(host, onError);

  // Leaving moves nothing: no question. Entering asks first (the dialog).
  function toggle() {
    if (inMaintenance) run('leave maintenance', 'POST', `${path}/maintenance`, { on: false });
    else setAsking('maintenance');
  }
  function confirm(body) {
    const what = asking;
    setAsking(null);
    if (what === 'maintenance') run('maintenance', 'POST', `${path}/maintenance`, { on: true, ...body });
    else run('evacuate', 'POST', `${path}/evacuate`, body);
  }

  return (
    <article class="host-page" aria-labelledby="host-title">
      <header>
        <h1 id="host-title"><StateIcon state={host.state} /> host {host.name}</h1>
        <div class="actions" role="toolbar" aria-label="Host actions">
          <button role="switch" aria-checked={inMaintenance ? 'true' : 'false'} data-action="maintenance"
                  disabled={!canAdmin || busy} title={denial(canAdmin, 'admin', who.role)} onClick={toggle}>
            Maintenance: {inMaintenance ? 'on' : 'off'}
          </button>
          <button data-action="evacuate" disabled={!canAdmin || busy || !canMove}
                  title={denial(canAdmin, 'admin', who.role)} onClick={() => setAsking('evacuate')}>
            Evacuate…
          </button>
        </div>
      </header>
      {asking && <EvacuateDialog host={host.name} what={asking} offline={host.state === 'offline'}
                                 onConfirm={confirm}
                                 onClose={() => setAsking(null)} />}
      <TaskLine pending={pending} task={task} attrs={{ 'data-maintenance-task': task && task.state }} />
      {task && task.kind === 'host-evacuate' && <EvacuationReport result={task.result} />}
      <dl class="summary">
        <dt>State</dt><dd data-field="state">{host.state}{host.manager ? ' (manager)' : ''}</dd>
        <dt>Address</dt><dd>{host.address || '–'}</dd>
        <dt>Accelerator</dt><dd data-field="accel">{host.accel || '–'}</dd>
        <dt>CPU model</dt><dd>{host.cpu_model || '–'}</dd>
        <dt>vireo</dt><dd>{host.version || '–'}</dd>
        <dt>QEMU</dt><dd data-field="qemu-version">{qemu || '–'}</dd>
      </dl>
      <h2>Load</h2>
      <Load host={host} />
      {standalone && (
        <>
          <h2>HA restart limit</h2>
          <HaSettings canAdmin={canAdmin} role={who.role} onError={onError} />
        </>
      )}
      <h2>VMs</h2>
      <table class="vm-table" data-host-vms>
        <thead><tr><th>VM</th><th>State</th><th>CPUs</th><th>Memory</th></tr></thead>
        <tbody>
          {mine.map((v) => (
            <tr key={v.id} data-vm-row={v.name}>
              <td><a href={`#/vm/${v.name}`}>{v.name}</a></td>
              <td><StateIcon state={v.state} /> {v.state}</td>
              <td>{v.vcpus}</td><td>{formatBytes(v.memory_mib * 1048576)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Graphs</h2>
      {host.state === 'offline' ? <p class="note">Offline: its metrics are kept on it.</p> : <Graphs host={host} />}
    </article>
  );
}
