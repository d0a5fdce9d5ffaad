// snapshots.jsx: a VM's snapshots (docs/snapshots-api.md): the tree as a
// list (parent, current, memory or disk only, quiesced), take one (name,
// memory, description), revert to one, delete one. Each change is a task:
// its progress shows here and in the task log (fed by the event stream),
// a refusal or a failed task shows the API's message; the list is read
// again when a task of this VM's snapshots ends.
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { useTask, TaskLine, denial } from './task-kit.jsx';
import './pages.css';

function when(t) {
  return (t || '').replace('T', ' ').replace('Z', '');
}

export function Snapshots({ vm, role, tasks, onError }) {
  const [list, setList] = useState(null);
  const [form, setForm] = useState({ name: '', memory: false, description: '' });
  const [confirm, setConfirm] = useState(null); // {action, name} awaiting a second click
  const canOperate = role === 'admin' || role === 'operator';
  const running = vm.state === 'running' || vm.state === 'paused';

  const load = () => api('GET', `/v1/vms/${encodeURIComponent(vm.name)}/snapshots`)
    .then((doc) => setList(doc.snapshots || []), (e) => onError(e.message));
  useEffect(() => { load(); }, [vm.name]);

  const { run, task, pending, busy } = useTask(tasks, onError, load);

  // Whether the API took the change (a refusal is shown: false).
  async function start(what, method, path, body) {
    setConfirm(null);
    return (await run(what, method, `/v1/vms/${encodeURIComponent(vm.name)}/snapshots${path}`, body)) !== null;
  }

  function create(ev) {
    ev.preventDefault();
    const body = { name: form.name };
    if (form.memory) body.memory = true;
    if (form.description) body.description = form.description;
    // A refused one keeps what was typed, to correct it.
    start(`snapshot '${form.name}'`, 'POST', '', body)
      .then((taken) => taken && setForm({ name: '', memory: false, description: '' }));
  }

  const deny = denial(canOperate, 'operator', role);
  return (
    <section class="snapshots" aria-label="Snapshots">
      <form class="inline-form" onSubmit={create}>
        <label for="snap-name">Name</label>
        <input id="snap-name" required value={form.name}
               onInput={(e) => setForm({ ...form, name: e.target.value })} />
        <label for="snap-desc">Description</label>
        <input id="snap-desc" value={form.description}
               onInput={(e) => setForm({ ...form, description: e.target.value })} />
        <label title={running ? undefined : 'only a running VM has memory to save'}>
          <input type="checkbox" id="snap-memory" checked={form.memory} disabled={!running}
                 onChange={(e) => setForm({ ...form, memory: e.target.checked })} /> with memory
        </label>
        <button type="submit" data-action="snapshot-create" disabled={!canOperate || busy} title={deny}>
          Take snapshot
        </button>
      </form>
      <TaskLine pending={pending} task={task} attrs={{ 'data-snapshot-task': task && task.state }} />
      {list === null ? <p class="loading">Loading…</p> : list.length === 0 ? (
        <p class="note" data-snapshots="0">No snapshots.</p>
      ) : (
        <table class="snapshot-table" data-snapshots={list.length}>
          <thead>
            <tr><th>Name</th><th>Parent</th><th>Taken</th><th>Kind</th><th>Description</th><th /></tr>
          </thead>
          <tbody>
            {list.map((s) => (
              <tr key={s.name} data-snapshot={s.name} data-current={s.current ? '1' : '0'}>
                <td>{s.current ? '● ' : ''}{s.name}</td>
                <td>{s.parent || '–'}</td>
                <td>{when(s.created_at)}</td>
                <td>{s.memory ? 'memory + disks' : 'disks'}{s.vm_running && !s.quiesced ? ' (not quiesced)' : ''}</td>
                <td>{s.description || ''}</td>
                <td class="row-actions">
                  {confirm && confirm.name === s.name ? (
                    <>
                      <button data-action={`confirm-${confirm.action}`} class="danger"
                              onClick={() => (confirm.action === 'revert'
                                ? start(`revert to '${s.name}'`, 'POST', `/${encodeURIComponent(s.name)}/revert`,
                                        running ? { force: true } : {})
                                : start(`delete '${s.name}'`, 'DELETE', `/${encodeURIComponent(s.name)}`))}>
                        {confirm.action === 'revert'
                          ? (running && !s.memory ? 'Stop the VM and revert' : 'Revert now')
                          : 'Delete it'}
                      </button>
                      <button onClick={() => setConfirm(null)}>Cancel</button>
                    </>
                  ) : (
                    <>
                      <button data-action="snapshot-revert" disabled={!canOperate || busy} title={deny}
                              onClick={() => setConfirm({ action: 'revert', name: s.name })}>Revert…</button>
                      <button data-action="snapshot-delete" disabled={!canOperate || busy} title={deny}
                              onClick={() => setConfirm({ action: 'delete', name: s.name })}>Delete…</button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
