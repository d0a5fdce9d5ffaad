// project-kit.jsx: what the volume and network pages share about projects
// (docs/projects.md, "Volumes and networks"): the user's role in a project
// (the higher of their cluster role and their role there; the VM page's
// too, main.jsx), the projects
// they may create in (a select, 'default' first chosen), an object's
// project as a cell, and its move to another project (the cluster's admins).
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';

const RANK = { none: 0, viewer: 1, operator: 2, admin: 3 };

// The role that counts on an object of `project` (null: no project).
export function roleIn(who, project) {
  const there = (project && who.grants && who.grants[project]) || 'none';
  return RANK[there] > RANK[who.role] ? there : who.role;
}

// The names of the projects this user reads (GET /v1/projects lists only
// theirs to a project's user); [] until read or when it cannot be read.
export function useProjectNames() {
  const [names, setNames] = useState([]);
  useEffect(() => {
    api('GET', '/v1/projects').then((d) => setNames(((d && d.projects) || []).map((p) => p.name)),
                                    () => setNames([]));
  }, []);
  return names;
}

// Where this user may create a volume or network: the projects where their
// role is admin; '' (no project) for the cluster's admins only.
export function creatable(who, names) {
  const mine = names.filter((p) => roleIn(who, p) === 'admin');
  return who.role === 'admin' ? [...mine, ''] : mine;
}

// The create form's first choice: 'default' when allowed, else the first.
export function firstChoice(choices) {
  return choices.includes('default') ? 'default' : choices[0] ?? '';
}

export function ProjectSelect({ id, choices, value, onChange }) {
  return (
    <>
      <label for={id}>Project</label>
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)}>
        {choices.map((p) => <option key={p} value={p}>{p || '(no project)'}</option>)}
      </select>
    </>
  );
}

// An object's project: a name, '–' for none, and for a VM's disk made with
// it, its VM's project (it has none of its own).
export function ProjectCell({ obj }) {
  return (
    <td data-project={obj.project || ''}>
      {obj.project || '–'}{obj.project_of_vm ? ' (its VM\'s)' : ''}
    </td>
  );
}

// Moves an object to another project or out of any (PATCH {"project"}):
// the cluster's admins only; onMove(project or null) sends it.
export function ProjectMove({ id, current, names, onMove, disabled }) {
  const [to, setTo] = useState(current || '');
  const choices = [...names, ''];
  return (
    <span class="project-move">
      <select id={id} aria-label="move to project" value={to} onChange={(e) => setTo(e.target.value)}>
        {choices.map((p) => <option key={p} value={p}>{p || '(no project)'}</option>)}
      </select>
      <button data-action="project-move" disabled={disabled || to === (current || '')}
              onClick={() => onMove(to || null)}>Move</button>
    </span>
  );
}
