// ha-settings.jsx: HA's restart limit (docs/ha.md, "The restart limit"):
// at most max_restarts HA restarts of one VM within window_minutes, the
// cluster's one setting (a standalone host's own: GET /v1/cluster/ha),
// shown on the cluster page and on a standalone host's page to everyone
// who reads them; an admin changes it (PATCH, the numbers changed sent as
// typed: the API says what is wrong, shown here as it words it). Read
// again POLL_MS after the last read ended while shown (poll-kit.js), so a
// change made elsewhere (another admin, `vireo cluster ha set`) shows; a
// form being edited keeps what the user typed and says when the stored
// values changed meanwhile, and Save sends only the fields the user changed.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api.js';
import { denial } from './task-kit.jsx';
import { pollWhileShown } from './poll-kit.js';

const FIELDS = ['max_restarts', 'window_minutes'];
const asForm = (s) => ({ max_restarts: String(s.max_restarts), window_minutes: String(s.window_minutes) });
const same = (a, b) => FIELDS.every((k) => String(a[k]) === String(b[k]));

export function HaSettings({ canAdmin, role, onError }) {
  const [now, setNow] = useState(null); // the settings as the API last said
  const [base, setBase] = useState(null); // the settings the form was filled from
  const [form, setForm] = useState({ max_restarts: '', window_minutes: '' });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const edit = useRef({ base: null, form: null }); // the latest, for the poll's reads
  edit.current = { base, form };

  const shown = (s) => {
    setNow(s);
    setBase(s);
    setForm(asForm(s));
  };
  // A read: the form follows unless the user is editing it.
  const followed = (s) => {
    const { base: b, form: f } = edit.current;
    if (!b || same(f, b)) shown(s);
    else setNow(s);
  };
  useEffect(() => pollWhileShown(async () => {
    try {
      followed(await api('GET', '/v1/cluster/ha'));
      return true;
    } catch (e) {
      onError(e.message);
      return false;
    }
  }, { setError: onError }), []);

  async function save(e) {
    e.preventDefault();
    const change = {};
    for (const k of FIELDS)
      if (form[k] !== String(base[k])) change[k] = /^-?\d+$/.test(form[k].trim()) ? Number(form[k]) : form[k];
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
      {!same(now, base) && (
        <p class="note" data-ha-changed>Changed meanwhile: now at most {now.max_restarts} within{' '}
          {now.window_minutes} minutes (Save sends only the numbers you changed).</p>
      )}
      {error && <p class="error" role="alert" data-ha-error>{error}</p>}
    </form>
  );
}
