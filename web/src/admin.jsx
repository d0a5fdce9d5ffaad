// admin.jsx: the admin pages (admins only: the top bar shows them to the
// admin role; the API refuses everyone else anyway, 403): users (list,
// create with a role and a password, delete) and API tokens (list, create
// for a role, a user and an expiry; its secret is shown this once, never
// again; revoke). Every refusal shows the API's message.
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import './pages.css';

const ROLES = ['viewer', 'operator', 'admin'];

function when(t) {
  return t ? t.replace('T', ' ').replace('Z', '') : 'never';
}

// A row's delete or revoke, asked twice (the second click does it).
function ConfirmButton({ label, confirmLabel, action, onDo }) {
  const [asking, setAsking] = useState(false);
  if (!asking) return <button data-action={action} onClick={() => setAsking(true)}>{label}</button>;
  return (
    <>
      <button data-action={`confirm-${action}`} class="danger" onClick={() => { setAsking(false); onDo(); }}>
        {confirmLabel}
      </button>
      <button onClick={() => setAsking(false)}>Cancel</button>
    </>
  );
}

// Reads a list (GET path) and reloads it after every change made here.
function useList(path, onError) {
  const [list, setList] = useState(null);
  const load = () => api('GET', path).then((doc) => setList(Array.isArray(doc) ? doc : []),
                                           (e) => onError(e.message));
  useEffect(() => { load(); }, [path]);
  const change = async (method, sub, body) => {
    onError(null);
    try {
      return await api(method, path + sub, body);
    } catch (e) {
      onError(e.message);
      return null;
    } finally {
      load();
    }
  };
  return [list, change];
}

// me: the session's principal (user:NAME): its own row has no delete, so
// an admin cannot lock themself out by a slip.
export function Users({ me, onError }) {
  const [users, change] = useList('/v1/users', onError);
  const [form, setForm] = useState({ name: '', role: 'viewer', password: '' });
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });

  async function create(ev) {
    ev.preventDefault();
    if (await change('POST', '', form)) setForm({ name: '', role: form.role, password: '' });
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
      {users === null ? <p class="loading">Loading…</p> : (
        <table data-users={users.length}>
          <thead><tr><th>Name</th><th>Role</th><th>Created</th><th>Project roles</th><th /></tr></thead>
          <tbody>
            {users.map((u) => (
              <tr key={u.name} data-user={u.name}>
                <td>{u.name}</td><td>{u.role}</td><td>{when(u.created_at)}</td>
                <td>{u.grants ? Object.entries(u.grants).map(([p, r]) => `${p}: ${r}`).join(', ') : ''}</td>
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
