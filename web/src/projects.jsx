// projects.jsx: the projects page (admins; docs/projects.md): each project
// with its quotas and what its VMs use (vCPUs, memory, VMs), create one with
// quotas, change its quotas (empty: no limit), delete it. The API checks
// everything (a delete of a project that holds VMs is refused, 409) and its
// message is shown as it says it.
import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { ConfirmButton, useList, when } from './admin-kit.jsx';
import { formatBytes } from './api.js';
import './pages.css';

// Each quota: its key, its form label, its column's heading.
const QUOTAS = [['vcpus', 'vCPUs', 'vCPUs'], ['memory_mib', 'Memory (MiB)', 'Memory'], ['vms', 'VMs', 'VMs']];
const EMPTY = { vcpus: '', memory_mib: '', vms: '' };

// The quotas of a form: a number each, or null (no limit) when empty.
function quotasOf(form) {
  return Object.fromEntries(QUOTAS.map(([k]) => [k, form[k] === '' ? null : Number(form[k])]));
}

function show(k, v) {
  if (v === null || v === undefined) return '∞';
  return k === 'memory_mib' ? formatBytes(v * 1048576) : String(v);
}

// One quota's fields, for the create form (idPrefix "project") and a
// project's edit (idPrefix "quota-NAME").
function QuotaInputs({ idPrefix, form, setForm }) {
  return QUOTAS.map(([k, label]) => (
    <Fragment key={k}>
      <label for={`${idPrefix}-${k}`}>{label}</label>
      <input id={`${idPrefix}-${k}`} type="number" min="0" size="6" value={form[k]} placeholder="no limit"
             onInput={(e) => setForm({ ...form, [k]: e.target.value })} />
    </Fragment>
  ));
}

function QuotaEditor({ project, change, onDone }) {
  const q = project.quotas || {};
  const [form, setForm] = useState(Object.fromEntries(QUOTAS.map(([k]) => [k, q[k] ?? ''])));
  async function save(ev) {
    ev.preventDefault();
    if (await change('PATCH', `/${encodeURIComponent(project.name)}`, { quotas: quotasOf(form) })) onDone();
  }
  return (
    <form class="inline-form" onSubmit={save} data-quota-form={project.name}>
      <QuotaInputs idPrefix={`quota-${project.name}`} form={form} setForm={setForm} />
      <button type="submit" data-action="quota-save">Save</button>
      <button type="button" onClick={onDone}>Cancel</button>
    </form>
  );
}

export function Projects({ onError }) {
  const [projects, change] = useList('/v1/projects', onError, 'projects');
  const [form, setForm] = useState({ name: '', ...EMPTY });
  const [editing, setEditing] = useState(null); // the project whose quotas are being changed

  async function create(ev) {
    ev.preventDefault();
    const quotas = Object.fromEntries(Object.entries(quotasOf(form)).filter(([, v]) => v !== null));
    if (await change('POST', '', { name: form.name, quotas })) setForm({ name: '', ...EMPTY });
  }

  return (
    <article class="admin" aria-labelledby="projects-title">
      <h1 id="projects-title">Projects</h1>
      <form class="inline-form" onSubmit={create} aria-label="Create a project">
        <label for="project-name">Name</label>
        <input id="project-name" required value={form.name} autocomplete="off"
               onInput={(e) => setForm({ ...form, name: e.target.value })} />
        <QuotaInputs idPrefix="project" form={form} setForm={setForm} />
        <button type="submit" data-action="project-create">Create project</button>
      </form>
      {projects === null ? <p class="loading">Loading…</p> : (
        <table data-projects={projects.length}>
          <thead>
            <tr><th>Name</th>{QUOTAS.map(([k, , heading]) => <th key={k}>{heading}: used / limit</th>)}
              <th>Created</th><th /></tr>
          </thead>
          <tbody>
            {projects.map((p) => (
              <tr key={p.name} data-project={p.name}>
                <td>{p.name}</td>
                {editing === p.name ? (
                  <td colspan={QUOTAS.length + 1}>
                    <QuotaEditor project={p} change={change} onDone={() => setEditing(null)} />
                  </td>
                ) : (
                  <>
                    {QUOTAS.map(([k]) => (
                      <td key={k} data-quota={k}>
                        {show(k, (p.usage || {})[k] ?? 0)} / {show(k, (p.quotas || {})[k])}
                      </td>
                    ))}
                    <td>{p.created_at ? when(p.created_at) : '–'}</td>
                  </>
                )}
                <td class="row-actions">
                  {editing !== p.name && (
                    <button data-action="project-quotas" onClick={() => setEditing(p.name)}>Quotas…</button>
                  )}
                  {p.name !== 'default' && (
                    <ConfirmButton label="Delete…" confirmLabel={`Delete ${p.name}`} action="project-delete"
                                   onDo={() => change('DELETE', `/${encodeURIComponent(p.name)}`)} />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </article>
  );
}
