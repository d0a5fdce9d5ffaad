// admin.jsx: the admin pages (admins only: the top bar shows them to the
// admin role; the API refuses everyone else anyway, 403): users (list,
// create with a role and a password, delete, grant and revoke a role on a
// project) and API tokens (list, create
// for a role, a user and an expiry; its secret is shown this once, never
// again; revoke). Every refusal shows the API's message.
import { useState } from 'preact/hooks';
import { ConfirmButton, useList, when } from './admin-kit.jsx';
import './pages.css';

const ROLES = ['viewer', 'operator', 'admin'];

// me: the session's principal (user:NAME): its own row has no delete, so
// an admin cannot lock themself out by a slip.
export function Users({ me, onError }) {
  const [users, change] = useList('/v1/users', onError);
  const [form, setForm] = useState({ name: '', role: 'viewer', password: '' });
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const [projects] = useList('/v1/projects', onError, 'projects');
  const [grant, setGrant] = useState({ user: '', project: '', role: 'operator' });
  const setG = (k) => (e) => setGrant({ ...grant, [k]: e.target.value });
  const userPath = (name) => `/${encodeURIComponent(name)}/grants`;

  async function create(ev) {
    ev.preventDefault();
    if (await change('POST', '', form)) setForm({ name: '', role: form.role, password: '' });
  }

  // A role on a project (POST /v1/users/NAME/grants; docs/projects.md).
  async function grantRole(ev) {
    ev.preventDefault();
    const user = grant.user || (users && users[0] && users[0].name);
    const project = grant.project || (projects && projects[0] && projects[0].name);
    await change('POST', userPath(user), { project, role: grant.role });
  }

  return (
    <article class="admin" aria-labelledby="users-title">
      <h1 id="users-title">Users</h1>
      <form class="inline-form" onSubmit={create}>
        <label for="user-name">Name</label>
        <input id="user-name" required value={form.name} onInput={set('name')} autocomplete="off" />
        <label for="user-role">Role</label>
        <select id="user-role" value={form.role} onChange={set('role')}>
          {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
        </select>
        <label for="user-password">Password</label>
        <input id="user-password" type="password" required minlength="8" value={form.password}
               onInput={set('password')} autocomplete="new-password" />
        <button type="submit" data-action="user-create">Create user</button>
      </form>
      <form class="inline-form" onSubmit={grantRole} aria-label="Grant a role on a project">
        <label for="grant-user">Give user</label>
        <select id="grant-user" value={grant.user} onChange={setG('user')}>
          {(users || []).map((u) => <option key={u.name} value={u.name}>{u.name}</option>)}
        </select>
        <label for="grant-role">the role</label>
        <select id="grant-role" value={grant.role} onChange={setG('role')}>
          {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
        </select>
        <label for="grant-project">on project</label>
        <select id="grant-project" value={grant.project} onChange={setG('project')}>
          {(projects || []).map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}
        </select>
        <button type="submit" data-action="grant" disabled={!users || !users.length}>Grant</button>
      </form>
      {users === null ? <p class="loading">Loading…</p> : (
        <table data-users={users.length}>
          <thead><tr><th>Name</th><th>Role</th><th>Created</th><th>Project roles</th><th /></tr></thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.name} data-user={u.name}>
                <td>{u.name}</td><td>{u.role}</td><td>{when(u.created_at)}</td>
                <td>
                  {Object.entries(u.grants || {}).map(([p, r]) => (
                    <span class="grant" key={p} data-grant={p}>
                      {p}: {r}{' '}
                      <button data-action="grant-revoke" aria-label={`Revoke ${u.name}'s role on ${p}`}
                              title="Revoke" onClick={() => change('DELETE', `${userPath(u.name)}/${encodeURIComponent(p)}`)}>
                        ×
                      </button>
                    </span>
                  ))}
                </td>
                <td>
                  {me === `user:${u.name}` ? <span class="note">(you)</span> : (
                    <ConfirmButton label="Delete…" confirmLabel={`Delete ${u.name} and their tokens`}
                                   action="user-delete"
                                   onDo={() => change('DELETE', `/${encodeURIComponent(u.name)}`)} />
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

export function Tokens({ onError }) {
  const [tokens, change] = useList('/v1/tokens', onError);
  const [form, setForm] = useState({ role: 'viewer', user: '', expires: '' });
  const [secret, setSecret] = useState(null); // the new token's secret, shown once
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });

  async function create(ev) {
    ev.preventDefault();
    setSecret(null);
    const body = { role: form.role };
    if (form.user.trim()) body.user = form.user.trim();
    if (form.expires.trim()) body.expires = form.expires.trim();
    const t = await change('POST', '', body);
    if (t) setSecret(t);
  }

  return (
    <article class="admin" aria-labelledby="tokens-title">
      <h1 id="tokens-title">API tokens</h1>
      <form class="inline-form" onSubmit={create}>
        <label for="token-role">Role</label>
        <select id="token-role" value={form.role} onChange={set('role')}>
          {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
        </select>
        <label for="token-user">For user (optional)</label>
        <input id="token-user" value={form.user} onInput={set('user')} autocomplete="off" />
        <label for="token-expires">Expires in (e.g. 12h, 30d; empty: never)</label>
        <input id="token-expires" value={form.expires} onInput={set('expires')} size="8" />
        <button type="submit" data-action="token-create">Create token</button>
      </form>
      {secret && (
        <div class="secret" role="status">
          <p>Token <code>{secret.id}</code> made. Its secret is shown this once: copy it now
            (send it as <code>Authorization: Bearer …</code>).</p>
          <input readonly data-token-secret value={secret.secret} size="60"
                 onFocus={(e) => e.target.select()} aria-label="The token's secret" />
          <button onClick={() => setSecret(null)}>Done</button>
        </div>
      )}
      {tokens === null ? <p class="loading">Loading…</p> : (
        <table data-tokens={tokens.length}>
          <thead><tr><th>Id</th><th>Role</th><th>User</th><th>Made by</th><th>Created</th><th>Expires</th><th /></tr></thead>
          <tbody>
            {tokens.map((t) => (
              <tr key={t.id} data-token={t.id}>
                <td><code>{t.id}</code></td><td>{t.role}</td><td>{t.user || '–'}</td>
                <td>{t.created_by || ''}</td><td>{when(t.created_at)}</td><td>{when(t.expires_at)}</td>
                <td>
                  <ConfirmButton label="Revoke…" confirmLabel="Revoke it" action="token-revoke"
                                 onDo={() => change('DELETE', `/${t.id}`)} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </article>
  );
}
