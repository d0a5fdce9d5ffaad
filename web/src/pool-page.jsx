// pool-page.jsx: one storage pool (docs/storage-api.md): its type, where it
// is, its capacity and use (the file system's, as the API gives them), and
// its volumes with their size (an iSCSI LUN's own size next to it), format,
// allocation, what they are made from
// and the VM that uses them; create a volume (name, size, format), delete
// one (asked once more; the API refuses one a VM uses or that backs
// another, and the page shows its message); flatten a linked clone in an
// rbd pool (asked once more; its task line shows its progress, a
// refusal the API's message). Volumes are the admin's: the
// cluster's, or a project's on its volumes (docs/projects.md). Each volume
// shows its project; a create names one (project-kit.jsx), and the
// cluster's admins move a volume to another project. Its volumes are read
// again as a project user's lists are (poll-kit.js), for every user: the
// app follows no volume events (allocations change without one).
import { useEffect, useState } from 'preact/hooks';
import { formatBytes } from './api.js';
import { ConfirmButton, useList } from './admin-kit.jsx';
import { useTask, TaskLine, denial } from './task-kit.jsx';
import { pollWhileShown } from './poll-kit.js';
import { roleIn, useProjectNames, creatable, firstChoice, ProjectSelect, ProjectCell,
         ProjectMove } from './project-kit.jsx';
import './pages.css';

const MiB = 1048576;

function Usage({ pool }) {
  const total = pool.capacity_bytes || 0;
  const used = total - (pool.available_bytes || 0);
  return (
    <p class="usage" data-capacity={total} data-used={used}>
      <meter min="0" max={total || 1} value={used} high={total * 0.9} aria-label="space used" />{' '}
      {formatBytes(used)} used of {formatBytes(total)}, {formatBytes(pool.available_bytes)} free
      {pool.shared ? ' (shared: the file system of the share)' : ' (the file system holding the pool)'}
    </p>
  );
}

function madeFrom(v) {
  if (v.backing_volume) return `linked clone of ${v.backing_volume}`;
  if (v.image) return `linked clone of image ${v.image}`;
  return '–';
}

export function PoolPage({ pool, who, tasks, onError }) {
  const role = who.role;
  const path = `/v1/pools/${encodeURIComponent(pool.name)}`;
  const [volumes, , load] = useList(`/v1/volumes?pool=${encodeURIComponent(pool.name)}`, onError, 'volumes');
  const { run, task, pending, busy } = useTask(tasks, onError, load);
  // The list was just read (useList): the first poll comes 5 s later.
  useEffect(() => pollWhileShown(load, { later: true, setError: onError }), [pool.name]);
  const [form, setForm] = useState({ name: '', size: 64, format: 'qcow2', project: null });
  const names = useProjectNames();
  const choices = creatable(who, names);
  const project = form.project ?? firstChoice(choices);
  const canCreate = choices.length > 0;
  const canAdmin = (v) => roleIn(who, v.project) === 'admin';
  const deny = (v) => denial(canAdmin(v), 'admin', role);
  const takesVolumes = pool.type !== 'backup';

  async function create(ev) {
    ev.preventDefault();
    const made = await run(`volume ${form.name}`, 'POST', `${path}/volumes`,
                           { name: form.name, size_bytes: Math.round(Number(form.size) * MiB), format: form.format,
                             ...(project ? { project } : {}) });
    if (made) setForm({ ...form, name: '' }); // a refused one keeps what was typed
  }

  return (
    <article class="pool-page" aria-labelledby="pool-title">
      <h1 id="pool-title">Pool {pool.name}</h1>
      <dl class="summary">
        <dt>Type</dt><dd>{pool.type}{pool.shared ? ', shared' : ''}</dd>
        <dt>Where</dt><dd>{pool.path || pool.portal || (pool.rbd && pool.rbd.pool) || '–'}</dd>
        <dt>Host</dt><dd>{pool.host || (pool.shared ? 'every host that mounts it' : '–')}</dd>
        {pool.reachable === false && <><dt>Unreachable</dt><dd class="error">{pool.reason}</dd></>}
        {/* RBD images a crash left that would not go yet, and why (tried again by vireod) */}
        {(pool.kept_intents || []).map((k) => (
          <><dt>Kept intent</dt>
            <dd class={k.failure === 'permanent' ? 'error' : ''} data-field="kept-intent">
              {k.intent}{k.host ? ` on host ${k.host}` : ''}: {k.error} ({k.failure}
              {k.tries != null ? `, ${k.tries} tries` : ''})</dd></>
        ))}
        <dt>Volumes</dt><dd data-field="volumes">{takesVolumes && volumes ? volumes.length : pool.volumes}</dd>
      </dl>
      <Usage pool={pool} />
      {!takesVolumes ? (
        <p class="note">A backup pool holds backups, no volumes: see a VM's Backups tab.</p>
      ) : (
        <>
          <h2>Volumes</h2>
          <form class="inline-form" onSubmit={create}>
            <label for="volume-name">Name</label>
            <input id="volume-name" required value={form.name}
                   onInput={(e) => setForm({ ...form, name: e.target.value })} />
            <label for="volume-size">Size (MiB)</label>
            <input id="volume-size" type="number" min="1" required value={form.size}
                   onInput={(e) => setForm({ ...form, size: e.target.value })} />
            <select id="volume-format" aria-label="format" value={form.format}
                    onChange={(e) => setForm({ ...form, format: e.target.value })}>
              <option value="qcow2">qcow2</option>
              <option value="raw">raw</option>
            </select>
            <ProjectSelect id="volume-project" choices={choices} value={project}
                           onChange={(p) => setForm({ ...form, project: p })} />
            <button type="submit" data-action="volume-create" disabled={!canCreate || busy}
                    title={denial(canCreate, 'admin', role)}>
              Create volume
            </button>
          </form>
          <TaskLine pending={pending} task={task} />
          {volumes === null ? <p class="loading">Loading…</p> : (
            <table data-volumes={volumes.length}>
              <thead>
                <tr><th>Volume</th><th>Size</th><th>Format</th><th>Allocated</th><th>Made from</th><th>Used by</th>
                    <th>Project</th><th /></tr>
              </thead>
              <tbody>
                {volumes.map((v) => (
                  <tr key={v.key} data-volume={v.name} data-state={v.state}
                      data-restore-incomplete={v.restore_incomplete ? v.restore_incomplete.task : undefined}>
                    <td>{v.name}{v.state === 'creating' ? ' (creating)' : ''}
                      {v.restore_incomplete && (
                        <span class="error" title={`Restore task ${v.restore_incomplete.task}: its VMs do not start`}>
                          {' '}(restore incomplete)
                        </span>
                      )}
                    </td>
                    <td>{formatBytes(v.virtual_size_bytes)}
                      {v.lun_size_bytes !== undefined && (
                        <span class="note" data-lun-size={v.lun_size_bytes}
                              title="the LUN's own size (a qcow2 layer's virtual size leaves room for its metadata)">
                          {' '}(LUN {formatBytes(v.lun_size_bytes)})
                        </span>
                      )}
                    </td>
                    <td>{v.format}</td>
                    <td>{formatBytes(v.allocation_bytes)}</td>
                    <td>{madeFrom(v)}</td>
                    <td data-used-by={v.attached_to || ''}>
                      {v.attached_to ? <a href={`#/vm/${v.attached_to}/hardware`}>{v.attached_to}</a> : '–'}
                    </td>
                    <ProjectCell obj={v} />
                    <td class="row-actions">
                      {role === 'admin' && !v.project_of_vm && (
                        <ProjectMove id={`move-${v.name}`} current={v.project} names={names} disabled={busy}
                                     onMove={(to) => run(`move ${v.name}`, 'PATCH',
                                                         `${path}/volumes/${encodeURIComponent(v.name)}`,
                                                         { project: to })} />
                      )}
                      {v.restore_incomplete && (
                        <ConfirmButton label="Accept as is…" confirmLabel={`Accept ${v.name} as it is`}
                                       action="volume-restore-clear" disabled={!canAdmin(v) || busy}
                                       title={deny(v)}
                                       onDo={() => run(`accept ${v.name}`, 'PATCH',
                                                       `${path}/volumes/${encodeURIComponent(v.name)}`,
                                                       { restore_incomplete: null })} />
                      )}
                      {pool.type === 'rbd' && (v.backing_volume || v.image) && (
                        <ConfirmButton label="Flatten…" confirmLabel={`Flatten ${v.name}`}
                                       action="volume-flatten" disabled={!canAdmin(v) || busy}
                                       title={deny(v)}
                                       onDo={() => run(`flatten ${v.name}`, 'POST',
                                                       `${path}/volumes/${encodeURIComponent(v.name)}/flatten`)} />
                      )}
                      <ConfirmButton label="Delete…" confirmLabel={`Delete ${v.name}`} action="volume-delete"
                                     disabled={!canAdmin(v) || busy} title={deny(v)}
                                     onDo={() => run(`delete ${v.name}`, 'DELETE',
                                                     `${path}/volumes/${encodeURIComponent(v.name)}`)} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </article>
  );
}
