// backups.jsx: a VM's Backups tab (docs/backups-api.md): its backups, oldest
// first (full or incremental and its parent, when, how much it stores,
// quiesced or not, the last verify); back up now (full or incremental, to a
// backup pool), verify one, restore one (over the VM, which must be
// stopped, or as a new VM: asked once more) and delete one. Each is a task:
// its progress shows under the form and in the task log; a refusal or a
// failed task shows the API's message. Operator role (delete, and a
// restore as a new VM: admin).
import { useState } from 'preact/hooks';
import { formatBytes } from './api.js';
import { ConfirmButton, useList, when } from './admin-kit.jsx';
import { useTask, TaskLine, denial } from './task-kit.jsx';
import './pages.css';

function verified(b) {
  const v = b.last_verify;
  if (!v) return 'never';
  return `${v.ok ? 'ok' : `${(v.problems || []).length} problem(s)`} (${when(v.at)})`;
}

// A row's restore, asked once more: over the VM, or as a new VM named here
// (asNew: a title when the role cannot make a VM, the admin's).
function RestoreButton({ backup, disabled, title, asNew, onDo }) {
  const [asking, setAsking] = useState(false);
  const [as, setAs] = useState('');
  if (!asking)
    return <button data-action="backup-restore" disabled={disabled} title={title}
                   onClick={() => setAsking(true)}>Restore…</button>;
  return (
    <form class="inline-form" onSubmit={(ev) => { ev.preventDefault(); setAsking(false); onDo(as); }}>
      <label for={`restore-as-${backup.id}`}>as a new VM</label>
      <input id={`restore-as-${backup.id}`} placeholder={`empty: over ${backup.vm}`} value={as}
             disabled={Boolean(asNew)} title={asNew} onInput={(e) => setAs(e.target.value)} />
      <button type="submit" data-action="confirm-backup-restore" class="danger">
        {as ? `Restore as ${as}` : `Restore over ${backup.vm}`}
      </button>
      <button type="button" onClick={() => setAsking(false)}>Cancel</button>
    </form>
  );
}

export function Backups({ vm, role, pools, tasks, onError }) {
  const [list, , load] = useList(`/v1/backups?vm=${encodeURIComponent(vm.name)}`, onError);
  const { run, task, pending, busy } = useTask(tasks, onError, load);
  const [form, setForm] = useState({ pool: '', incremental: false });
  const canOperate = role === 'admin' || role === 'operator';
  const canAdmin = role === 'admin';
  const backupPools = pools.filter((p) => p.type === 'backup');

  function backUp(ev) {
    ev.preventDefault();
    const body = {};
    if (form.pool) body.pool = form.pool;
    if (form.incremental) body.incremental = true;
    run(form.incremental ? 'incremental backup' : 'full backup', 'POST',
        `/v1/vms/${encodeURIComponent(vm.name)}/backups`, body);
  }

  const of = (b) => `/v1/backups/${encodeURIComponent(b.id)}`;
  return (
    <section class="backups" aria-label="Backups">
      <form class="inline-form" onSubmit={backUp}>
        <label for="backup-pool">Backup pool</label>
        <select id="backup-pool" value={form.pool} onChange={(e) => setForm({ ...form, pool: e.target.value })}>
          <option value="">backup (the default)</option>
          {backupPools.filter((p) => p.name !== 'backup')
            .map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}
        </select>
        <label>
          <input type="checkbox" id="backup-incremental" checked={form.incremental}
                 onChange={(e) => setForm({ ...form, incremental: e.target.checked })} /> incremental
        </label>
        <button type="submit" data-action="backup-create" disabled={!canOperate || busy}
                title={denial(canOperate, 'operator', role)}>Back up now</button>
      </form>
      <TaskLine pending={pending} task={task} />
      {list === null ? <p class="loading">Loading…</p> : list.length === 0 ? (
        <p class="note" data-backups="0">No backups.</p>
      ) : (
        <table class="backup-table" data-backups={list.length}>
          <thead>
            <tr><th>Backup</th><th>Kind</th><th>Taken</th><th>Stored</th><th>Pool</th><th>Consistency</th>
                <th>Verified</th><th /></tr>
          </thead>
          <tbody>
            {list.map((b) => (
              <tr key={b.id} data-backup={b.id} data-kind={b.kind}>
                <td>{b.id}</td>
                <td>{b.kind}{b.parent ? ` of ${b.parent}` : ''}</td>
                <td>{when(b.created_at)}</td>
                <td>{formatBytes(b.stored_bytes)}</td>
                <td>{b.pool}</td>
                <td>{!b.vm_running ? 'VM stopped' : b.quiesced ? 'quiesced'
                  : `not quiesced${b.quiesce_reason ? ` (${b.quiesce_reason})` : ''}`}</td>
                <td data-verified={b.last_verify ? (b.last_verify.ok ? 'ok' : 'bad') : ''}>{verified(b)}</td>
                <td class="row-actions">
                  <button data-action="backup-verify" disabled={!canOperate || busy}
                          title={denial(canOperate, 'operator', role)}
                          onClick={() => run(`verify ${b.id}`, 'POST', `${of(b)}/verify`, {})}>Verify</button>
                  <RestoreButton backup={b} disabled={!canOperate || busy} title={denial(canOperate, 'operator', role)}
                                 asNew={denial(canAdmin, 'admin', role)}
                                 onDo={(as) => run(as ? `restore ${b.id} as ${as}` : `restore ${b.id}`, 'POST',
                                                   `${of(b)}/restore`, as ? { as } : {})} />
                  <ConfirmButton label="Delete…" confirmLabel="Delete it" action="backup-delete"
                                 disabled={!canAdmin || busy} title={denial(canAdmin, 'admin', role)}
                                 onDo={() => run(`delete ${b.id}`, 'DELETE', of(b))} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
