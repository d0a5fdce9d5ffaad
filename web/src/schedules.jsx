// schedules.jsx: the scheduled snapshots and backups (docs/schedules.md):
// each schedule's kind, what it selects, when it runs, its keep rules, its
// next due time and its last result; create one, delete one, run one now.
// Reading is every role's right, changes and run-now the admin's (the API
// checks; the buttons are a convenience). A run is an ordinary task: its
// state shows here and in the task log (fed by the event stream).
import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { ConfirmButton, useList, when } from './admin-kit.jsx';
import './pages.css';

const KEEP = ['last', 'daily', 'weekly', 'monthly'];
const EMPTY = { name: '', action: 'snapshot', select: 'vm', vm: '', group: '', timing: 'every', every: 'daily',
                window: '', at: '', keep_last: '', keep_daily: '', keep_weekly: '', keep_monthly: '' };

function selection(s) {
  if (s.all) return 'all VMs';
  if (s.group) return `group ${s.group}`;
  return `VM ${s.vm}`;
}

function timing(s) {
  if (s.at) return `cron ${s.at}`;
  return `${s.every}${s.window ? ` in ${s.window}` : ''}`;
}

function retention(s) {
  const rules = KEEP.filter((k) => s[`keep_${k}`] !== undefined && s[`keep_${k}`] !== null)
    .map((k) => `${k} ${s[`keep_${k}`]}`);
  return rules.length ? `keep ${rules.join(', ')}` : 'keep all';
}

// The body of POST /v1/schedules from the form.
function bodyOf(f) {
  const body = { name: f.name, action: f.action };
  if (f.select === 'all') body.all = true;
  else body[f.select] = f[f.select];
  if (f.timing === 'at') body.at = f.at;
  else {
    body.every = f.every;
    if (f.window) body.window = f.window;
  }
  for (const k of KEEP) if (f[`keep_${k}`] !== '') body[`keep_${k}`] = Number(f[`keep_${k}`]);
  return body;
}

// The last run of each VM (GET /v1/schedules/NAME's runs): its task's state
// as the task log knows it, or the error that kept it from running.
function LastResult({ runs, tasks }) {
  if (!runs || !runs.length) return '–';
  return runs.map((r) => {
    const last = r.last_run;
    if (!last) return <div key={r.vm_id}>{r.vm}: {r.last_skip ? `skipped (${r.last_skip.reason})` : '–'}</div>;
    const task = last.task && tasks.find((t) => t.id === last.task);
    const state = last.error ? `error: ${last.error}` : task ? task.state : `task ${last.task}`;
    return (
      <div key={r.vm_id} data-last-run={r.vm} data-last-state={task ? task.state : ''}>
        {r.vm}: {state} ({when(last.at)}){task && task.error ? `: ${task.error.message}` : ''}
      </div>
    );
  });
}

export function Schedules({ role, vms, tasks, onError }) {
  const [schedules, change] = useList('/v1/schedules', onError, 'schedules');
  const [runs, setRuns] = useState({}); // name -> the runs of GET /v1/schedules/NAME
  const [form, setForm] = useState(EMPTY);
  const [started, setStarted] = useState(null); // {name, tasks: [id]} of the last run-now
  const isAdmin = role === 'admin';
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const vm = form.vm || (vms[0] ? vms[0].name : '');

  // Each schedule's runs (for its last result), read again when a task of
  // a run-now ends.
  const doneTasks = tasks.filter((t) => ['succeeded', 'failed', 'cancelled'].includes(t.state)).length;
  useEffect(() => {
    if (!schedules) return;
    Promise.all(schedules.map((s) => api('GET', `/v1/schedules/${encodeURIComponent(s.name)}`)
      .then((d) => [s.name, d.runs || []], () => [s.name, []])))
      .then((pairs) => setRuns(Object.fromEntries(pairs)));
  }, [schedules, doneTasks]);

  async function create(ev) {
    ev.preventDefault();
    if (await change('POST', '', bodyOf({ ...form, vm }))) setForm({ ...EMPTY, action: form.action });
  }

  async function runNow(name) {
    const answer = await change('POST', `/${encodeURIComponent(name)}/run`, {});
    if (answer) setStarted({ name, tasks: (answer.tasks || []).map((t) => t.id) });
  }

  const keepInputs = KEEP.map((k) => (
    <Fragment key={k}>
      <label for={`schedule-keep-${k}`}>keep {k}</label>
      <input id={`schedule-keep-${k}`} type="number" min="0" max="10000" size="4" value={form[`keep_${k}`]}
             onInput={set(`keep_${k}`)} />
    </Fragment>
  ));

  return (
    <article class="admin" aria-labelledby="schedules-title">
      <h1 id="schedules-title">Schedules</h1>
      {!isAdmin && <p class="note">Making, deleting and running schedules needs the admin role (yours: {role}).</p>}
      {isAdmin && (
        <form class="inline-form" onSubmit={create} aria-label="Create a schedule">
          <label for="schedule-name">Name</label>
          <input id="schedule-name" required pattern="[a-z0-9\-]{1,32}" size="12" value={form.name}
                 onInput={set('name')} autocomplete="off" />
          <label for="schedule-action">Kind</label>
          <select id="schedule-action" value={form.action} onChange={set('action')}>
            <option value="snapshot">snapshot</option>
            <option value="backup">backup</option>
          </select>
          <label for="schedule-select">Of</label>
          <select id="schedule-select" value={form.select} onChange={set('select')}>
            <option value="vm">one VM</option>
            <option value="group">a placement group</option>
            <option value="all">all VMs</option>
          </select>
          {form.select === 'vm' && (
            <select id="schedule-vm" aria-label="VM" value={vm} onChange={set('vm')}>
              {vms.map((v) => <option key={v.name} value={v.name}>{v.name}</option>)}
            </select>
          )}
          {form.select === 'group' && (
            <input id="schedule-group" aria-label="Group" required size="10" value={form.group}
                   onInput={set('group')} />
          )}
          <label for="schedule-timing">When</label>
          <select id="schedule-timing" value={form.timing} onChange={set('timing')}>
            <option value="every">every day or week</option>
            <option value="at">at a cron time</option>
          </select>
          {form.timing === 'every' ? (
            <>
              <select id="schedule-every" aria-label="Every" value={form.every} onChange={set('every')}>
                <option value="daily">daily</option>
                <option value="weekly">weekly (Sunday)</option>
              </select>
              <label for="schedule-window">window (e.g. 01:00-05:00; empty: 02:00-06:00)</label>
              <input id="schedule-window" size="11" value={form.window} onInput={set('window')} />
            </>
          ) : (
            <input id="schedule-at" aria-label="Cron expression" required size="16" value={form.at}
                   placeholder="*/15 8-18 * * mon-fri" onInput={set('at')} />
          )}
          {keepInputs}
          <button type="submit" data-action="schedule-create">Create schedule</button>
        </form>
      )}
      {started && (
        <p class="note" data-run-now={started.name}>
          Run now of {started.name}:{' '}
          {started.tasks.length ? started.tasks.map((id) => {
            const t = tasks.find((x) => x.id === id);
            return <span key={id} data-run-task={id} data-state={t ? t.state : 'queued'}>
              task {id} {t ? t.state : 'queued'}{t && t.error ? `: ${t.error.message}` : ''}{' '}
            </span>;
          }) : 'no VM of this host selected (their hosts run them at their next round)'}
        </p>
      )}
      {schedules === null ? <p class="loading">Loading…</p> : (
        <table data-schedules={schedules.length}>
          <thead>
            <tr><th>Name</th><th>Kind</th><th>Selects</th><th>When</th><th>Retention</th><th>Next run (UTC)</th>
              <th>Last result</th><th /></tr>
          </thead>
          <tbody>
            {schedules.map((s) => (
              <tr key={s.name} data-schedule={s.name}>
                <td>{s.name}{s.enabled === false ? ' (disabled)' : ''}</td>
                <td>{s.action}</td><td>{selection(s)}</td><td>{timing(s)}</td><td>{retention(s)}</td>
                <td>{s.next_due ? when(s.next_due) : '–'}</td>
                <td><LastResult runs={runs[s.name]} tasks={tasks} /></td>
                <td class="row-actions">
                  <button data-action="schedule-run" disabled={!isAdmin} onClick={() => runNow(s.name)}>Run now</button>
                  <ConfirmButton label="Delete…" confirmLabel={`Delete ${s.name}`} action="schedule-delete"
                                 disabled={!isAdmin}
                                 onDo={() => change('DELETE', `/${encodeURIComponent(s.name)}`)} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </article>
  );
}
