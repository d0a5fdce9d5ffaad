// vm-page.jsx: one VM: its summary (state, host, CPUs, memory, disks, NICs,
// IPs the network's DHCP leases know, the uid its QEMU runs as), its
// actions (disabled below the role they need: the API's 403 is the real
// guard) and its tabs: graphs and the
// serial console, the graphical console (noVNC), the snapshots, the
// hardware (CPUs, memory, display, disks, NICs) and the backups. A paused
// post-copy migration shows above them with its Resume (post-copy-resume.jsx),
// and what vireod found of a lost iSCSI target (san_state: a running VM's
// held I/O, a pause).
import { useState } from 'preact/hooks';
import { api, formatBytes } from './api.js';
import { StateIcon } from './tree.jsx';
import { lazyView } from './lazy.jsx';
import { CloneVm } from './vm-clone.jsx';
import { Dialog } from './dialog-kit.jsx';
import { PostCopyResume } from './post-copy-resume.jsx';

const Graphs = lazyView(() => import('./graphs.jsx'), 'Graphs');
const SerialConsole = lazyView(() => import('./serial.jsx'), 'SerialConsole');
const GraphicalConsole = lazyView(() => import('./vnc.jsx'), 'GraphicalConsole');
const Snapshots = lazyView(() => import('./snapshots.jsx'), 'Snapshots');
const Hardware = lazyView(() => import('./hardware.jsx'), 'Hardware');
const Backups = lazyView(() => import('./backups.jsx'), 'Backups');
const MigrateDialog = lazyView(() => import('./migrate-dialog.jsx'), 'MigrateDialog');

const ACTIONS = [
  { name: 'start', label: 'Start', when: ['defined', 'stopped', 'crashed'] },
  { name: 'stop', label: 'Stop', when: ['running', 'paused'] },
  { name: 'force-stop', label: 'Force stop', when: ['running', 'paused', 'stopping', 'starting'] },
  { name: 'reboot', label: 'Reboot', when: ['running'] },
  { name: 'pause', label: 'Pause', when: ['running'] },
  { name: 'resume', label: 'Resume', when: ['paused'] },
];

function ipsOf(vm, networks) {
  const macs = (vm.nics || []).map((n) => (n.mac || '').toLowerCase());
  const ips = (vm.nics || []).map((n) => n.ip).filter(Boolean);
  for (const net of networks)
    for (const lease of net.leases || [])
      if (macs.includes((lease.mac || '').toLowerCase()) && lease.ip && !ips.includes(lease.ip))
        ips.push(lease.ip);
  return ips;
}

function Summary({ vm, networks }) {
  const ips = ipsOf(vm, networks);
  return (
    <dl class="summary">
      <dt>State</dt><dd data-field="state"><StateIcon state={vm.state} /> {vm.state}</dd>
      <dt>Host</dt><dd>{vm.host}</dd>
      <dt>CPUs</dt><dd>{vm.vcpus}{vm.max_vcpus > vm.vcpus ? ` (up to ${vm.max_vcpus})` : ''}</dd>
      <dt>Memory</dt><dd>{formatBytes(vm.memory_mib * 1048576)}</dd>
      <dt>Display</dt><dd data-field="display">{vm.display || 'none'}</dd>
      <dt>Image</dt><dd>{vm.image || '–'}</dd>
      <dt>Disks</dt>
      <dd>
        <ul>{(vm.disks || []).map((d) => <li key={d.slot}>{d.volume || d.path} ({d.format}{d.readonly ? ', read-only' : ''})</li>)}</ul>
      </dd>
      <dt>NICs</dt>
      <dd>
        <ul>{(vm.nics || []).map((n) => <li key={n.slot}>{n.network} {n.mac}</li>)}</ul>
      </dd>
      <dt>IPs</dt><dd data-field="ips">{ips.length ? ips.join(', ') : 'not known'}</dd>
      {vm.qemu_uid !== undefined && <><dt>QEMU uid</dt><dd data-field="qemu-uid">{vm.qemu_uid}</dd></>}
      <dt>Uptime</dt><dd>{vm.state === 'running' && vm.uptime_s !== undefined ? `${vm.uptime_s} s` : '–'}</dd>
    </dl>
  );
}

export function VmPage({ vm, networks, pools, hosts = [], role, tab, tasks, onError }) {
  const [busy, setBusy] = useState(null);
  const [migrating, setMigrating] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const canOperate = role === 'admin' || role === 'operator';
  const canAdmin = role === 'admin';

  async function act(name) {
    setBusy(name);
    onError(null);
    try {
      if (name === 'delete') await api('DELETE', `/v1/vms/${vm.name}`);
      else if (name === 'force-stop') await api('POST', `/v1/vms/${vm.name}/stop`, { force: true });
      else await api('POST', `/v1/vms/${vm.name}/${name}`, {});
    } catch (e) {
      onError(e.message);
    } finally {
      setBusy(null);
      setConfirming(false);
    }
  }

  const tabs = [['summary', 'Summary'], ['graphs', 'Graphs'], ['console', 'Console'],
                ['screen', 'Screen'], ['snapshots', 'Snapshots'], ['hardware', 'Hardware'], ['backups', 'Backups']];
  return (
    <article class="vm-page" aria-labelledby="vm-title">
      <header>
        <h1 id="vm-title"><StateIcon state={vm.state} /> {vm.name}</h1>
        <div class="actions" role="toolbar" aria-label="VM actions">
          {ACTIONS.map((a) => (
            <button key={a.name} data-action={a.name} onClick={() => act(a.name)}
                    disabled={!canOperate || busy !== null}
                    title={!canOperate ? `needs the operator role (yours: ${role})` : undefined}
                    class={a.when.includes(vm.state) ? 'likely' : ''}>
              {a.label}
            </button>
          ))}
          <button data-action="migrate" disabled={!canAdmin || busy !== null || hosts.length < 2}
                  title={!canAdmin ? `needs the admin role (yours: ${role})`
                         : hosts.length < 2 ? 'no other host to move it to' : undefined}
                  class={vm.state === 'running' ? 'likely' : ''} onClick={() => setMigrating(true)}>Migrate…</button>
          <CloneVm vm={vm} role={role} pools={pools} tasks={tasks} onError={onError} />
          <button data-action="delete" class="danger" disabled={!canAdmin || busy !== null}
                  title={!canAdmin ? `needs the admin role (yours: ${role})` : undefined}
                  onClick={() => setConfirming(true)}>Delete…</button>
        </div>
      </header>
      {confirming && (
        <Dialog class="confirm" role="alertdialog" aria-labelledby="confirm-text" onClose={() => setConfirming(false)}>
          <p id="confirm-text">Delete VM '{vm.name}' and its own disks? This cannot be undone.</p>
          <button data-action="confirm-delete" class="danger" onClick={() => act('delete')}>
            Delete {vm.name}
          </button>
          <button onClick={() => setConfirming(false)}>Cancel</button>
        </Dialog>
      )}
      <PostCopyResume vm={vm} hosts={hosts} role={role} tasks={tasks} onError={onError} />
      {vm.state === 'paused' && (vm.san_state || '').startsWith('paused:') && (
        // A pause on a lost iSCSI target: vireod resumes it (docs/storage-san.md).
        <p class="banner" role="status" data-field="san-state">
          {vm.san_state}. It resumes by itself once the target answers with the LUN again.
        </p>
      )}
      {vm.state === 'running' && (vm.san_state || '').startsWith('I/O held:') && (
        // A running VM whose target is lost: its disk I/O waits for it.
        <p class="banner" role="status" data-field="san-state">
          {vm.san_state}. Its disk I/O waits (the guest may hang) until the target answers
          again.
        </p>
      )}
      {migrating && <MigrateDialog vm={vm} hosts={hosts} onClose={() => setMigrating(false)} onError={onError} />}
      <nav class="tabs" aria-label="VM views">
        {tabs.map(([id, label]) => (
          <a key={id} href={`#/vm/${vm.name}/${id}`} data-tab={id}
             aria-current={tab === id ? 'page' : undefined}>{label}</a>
        ))}
      </nav>
      {tab === 'summary' && <Summary vm={vm} networks={networks} />}
      {tab === 'graphs' && <Graphs vm={vm} />}
      {tab === 'console' && <SerialConsole vm={vm} canOperate={canOperate} />}
      {tab === 'screen' && <GraphicalConsole vm={vm} canOperate={canOperate} />}
      {tab === 'snapshots' && <Snapshots vm={vm} role={role} tasks={tasks} onError={onError} />}
      {tab === 'hardware' && <Hardware vm={vm} role={role} networks={networks} pools={pools} tasks={tasks}
                                       onError={onError} />}
      {tab === 'backups' && <Backups vm={vm} role={role} pools={pools} tasks={tasks} onError={onError} />}
    </article>
  );
}
