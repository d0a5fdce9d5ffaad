// projects.jsx: the projects page (docs/projects.md): each project with
// its quotas and what it holds (vCPUs, memory, VMs, disk: its VMs' disks and
// its volumes), and how many volumes and networks are its on every host (the
// API's counts, from the cluster's usage documents). Admins create one
// with quotas, change its quotas (empty: no limit), delete it; a user with
// roles on projects reads their projects' rows. The API checks everything
// (a delete of a project that holds VMs is refused, 409) and its message is
// shown as it says it.
import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { ConfirmButton, useList, when } from './admin-kit.jsx';
import { formatBytes } from './api.js';
import './pages.css';

// Each quota: its key, its form label, its column's heading, and the API's
// units in one of the form's (disk: GiB in the form, bytes in the API).
const GiB = 1073741824;
const QUOTAS = [['vcpus', 'vCPUs', 'vCPUs', 1], ['memory_mib', 'Memory (MiB)', 'Memory', 1],
                ['vms', 'VMs', 'VMs', 1], ['disk_bytes', 'Disk (GiB)', 'Disk', GiB]];
const EMPTY = { vcpus: '', memory_mib: '', vms: '', disk_bytes: '' };

// The quotas of a form: a number each, or null (no limit) when empty.
function quotasOf(form) {
  return Object.fromEntries(QUOTAS.map(([k, , , unit]) =>
    [k, form[k] === '' ? null : Math.round(Number(form[k]) * unit)]));
}

function show(k, v) {
  if (v === null || v === undefined) return '∞';
  if (k === 'memory_mib') return formatBytes(v * 1048576);
  return k === 'disk_bytes' ? formatBytes(v) : String(v);
}

// One quota's fields, for the create form (idPrefix "project") and a
// project's edit (idPrefix "quota-NAME"); the disk's GiB take fractions (a
// quota set in bytes, as `vireo project create --max-disk 1500M`).
function QuotaInputs({ idPrefix, form, setForm }) {
  return QUOTAS.map(([k, label, , unit]) => (
    <Fragment key={k}>
      <label for={`${idPrefix}-${k}`}>{label}</label>
      <input id={`${idPrefix}-${k}`} type="number" min="0" step={unit === 1 ? '1' : 'any'} size="6"
             value={form[k]} placeholder="no limit"
             onInput={(e) => setForm({ ...form, [k]: e.target.value })} />
    </Fragment>
  ));
}

function QuotaEditor({ project, change, onDone }) {
  const q = project.quotas || {};
  const [form, setForm] = useState(Object.fromEntries(QUOTAS.map(([k, , , unit]) =>
    [k, q[k] === null || q[k] === undefined ? '' : q[k] / unit])));
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

export function Projects({ who, onError }) {
  const [projects, change] = useList('/v1/projects', onError, 'projects');
  const isAdmin = who.role === 'admin';
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
      {isAdmin && <form class="inline-form" onSubmit={create} aria-label="Create a project">
        <label for="project-name">Name</label>
        <input id="project-name" required value={form.name} autocomplete="off"
               onInput={(e) => setForm({ ...form, name: e.target.value })} />
        <QuotaInputs idPrefix="project" form={form} setForm={setForm} />
        <button type="submit" data-action="project-create">Create project</button>
      </form>}
      {projects === null ? <p class="loading">Loading…</p> : (
        <table data-projects={projects.length}>
          <thead>
            <tr><th>Name</th>{QUOTAS.map(([k, , heading]) => <th key={k}>{heading}: used / limit</th>)}
              <th>Volumes</th><th>Networks</th><th>Created</th><th /></tr>
          </thead>
          <tbody>
            {projects.map((p) => (
              <tr key={p.name} data-project={p.name}>
                <td>{p.name}</td>
                {editing === p.name ? (
                  <td colspan={QUOTAS.length + 3}>
                    <QuotaEditor project={p} change={change} onDone={() => setEditing(null)} />
                  </td>
                ) : (
                  <>
                    {QUOTAS.map(([k]) => (
                      <td key={k} data-quota={k}>
                        {show(k, (p.usage || {})[k] ?? 0)} / {show(k, (p.quotas || {})[k])}
                      </td>
                    ))}
                    <td data-count="volumes">{(p.counts || {}).volumes ?? '–'}</td>
                    <td data-count="networks">{(p.counts || {}).networks ?? '–'}</td>
                    <td>{p.created_at ? when(p.created_at) : '–'}</td>
                  </>
                )}
                <td class="row-actions">
                  {isAdmin && editing !== p.name && (
                    <button data-action="project-quotas" onClick={() => setEditing(p.name)}>Quotas…</button>
                  )}
                  {isAdmin && p.name !== 'default' && (
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
