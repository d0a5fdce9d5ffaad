// ha-settings.jsx: the cluster page's HA restart limit (docs/ha.md, "The
// restart limit"): at most max_restarts HA restarts of one VM within
// window_minutes, the cluster's one setting (GET /v1/cluster/ha), shown to
// everyone who reads the page; an admin changes it (PATCH, the numbers
// sent as typed: the API says what is wrong, shown here as it words it).
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { denial } from './task-kit.jsx';

export function HaSettings({ canAdmin, role, onError }) {
  const [now, setNow] = useState(null); // the settings as the API last said
  const [form, setForm] = useState({ max_restarts: '', window_minutes: '' });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const shown = (s) => {
    setNow(s);
    setForm({ max_restarts: String(s.max_restarts), window_minutes: String(s.window_minutes) });
  };
  useEffect(() => {
    api('GET', '/v1/cluster/ha').then(shown, (e) => onError(e.message));
  }, []);

  async function save(e) {
    e.preventDefault();
    const change = {};
    for (const k of ['max_restarts', 'window_minutes'])
      if (form[k] !== String(now[k])) change[k] = /^-?\d+$/.test(form[k].trim()) ? Number(form[k]) : form[k];
    if (!Object.keys(change).length) return;
    setBusy(true);
    setError(null);
    try {
      shown(await api('PATCH', '/v1/cluster/ha', change));
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  }

  if (!now) return null;
  const deny = denial(canAdmin, 'admin', role);
  const field = (k) => (
    <input name={`ha-${k.replace('_', '-')}`} inputMode="numeric" size="5" value={form[k]}
           disabled={!canAdmin} title={deny} onInput={(e) => setForm({ ...form, [k]: e.target.value })} />
  );
  return (
    <form class="ha-settings inline-form" data-ha={`${now.max_restarts}/${now.window_minutes}`} onSubmit={save}>
      <label>At most {field('max_restarts')} HA restarts of a VM</label>{' '}
      <label>within {field('window_minutes')} minutes</label>{' '}
      {canAdmin && <button type="submit" data-action="ha-save" disabled={busy}>Save</button>}
      {error && <p class="error" role="alert" data-ha-error>{error}</p>}
    </form>
  );
}
