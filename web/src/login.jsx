// login.jsx: the login form (POST /v1/login); the API's answer to a wrong
// password or a lock-out is shown as it says it.
import { useState } from 'preact/hooks';
import { login } from './api.js';

export function Login({ onLoggedIn }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(ev) {
    ev.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(user, password);
      onLoggedIn();
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="login">
      <form onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">vireo</h1>
        <label for="login-user">User</label>
        <input id="login-user" name="user" autocomplete="username" required autofocus
               value={user} onInput={(e) => setUser(e.target.value)} />
        <label for="login-password">Password</label>
        <input id="login-password" name="password" type="password" autocomplete="current-password"
               required value={password} onInput={(e) => setPassword(e.target.value)} />
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit" disabled={busy}>Log in</button>
      </form>
    </main>
  );
}
