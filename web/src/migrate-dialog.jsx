// migrate-dialog.jsx: the VM page's Migrate dialog: a target host (or the
// manager's pick), optional max downtime, bandwidth and post-copy, sent as
// POST /v1/vms/VM/migrate (admin; the API's refusal shown as it words it).
// The task's live progress (phase, bytes, expected downtime) shows in the
// task log; the VM's host changes in the tree when the task ends.
import { useRef, useState } from 'preact/hooks';
import { api } from './api.js';
import { useDialog } from './dialog-kit.jsx';

export function MigrateDialog({ vm, hosts, onClose, onError }) {
  // Where it may go: another host that is online (the API says why not for the rest).
  const targets = hosts.filter((h) => h.name !== vm.host && h.state === 'online');
  const [to, setTo] = useState('');
  const [downtime, setDowntime] = useState('');
  const [bandwidth, setBandwidth] = useState('');
  const [postCopy, setPostCopy] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  // The focus in it from the start, kept in it, back on Migrate… at its end (dialog-kit.jsx).
  const first = useRef(null);
  const dialog = useDialog(onClose, first);

  async function submit(e) {
    e.preventDefault();
    const body = {};
    if (to) body.to = to;
    if (downtime) body.max_downtime_ms = Number(downtime);
    if (bandwidth) body.bandwidth = /^\d+$/.test(bandwidth) ? Number(bandwidth) : bandwidth;
    if (postCopy) body.post_copy = true;
    setBusy(true);
    setError(null);
    onError(null);
    try {
      await api('POST', `/v1/vms/${encodeURIComponent(vm.name)}/migrate`, body);
      onClose();
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="dialog migrate" role="dialog" aria-modal="true" aria-labelledby="migrate-title"
          onSubmit={submit} ref={dialog.ref} onKeyDown={dialog.onKeyDown}>
      <h2 id="migrate-title">Migrate {vm.name} (now on {vm.host})</h2>
      <label>Target host{' '}
        <select name="to" value={to} onChange={(e) => setTo(e.target.value)} ref={first}>
          <option value="">automatic (the manager picks)</option>
          {targets.map((h) => <option key={h.name} value={h.name}>{h.name}</option>)}
        </select>
      </label>
      <label>Max downtime (ms){' '}
        <input name="max_downtime_ms" type="number" min="1" max="60000" placeholder="300"
               value={downtime} onInput={(e) => setDowntime(e.target.value)} />
      </label>
      <label>Bandwidth{' '}
        <input name="bandwidth" placeholder="unlimited, e.g. 100M/s" value={bandwidth}
               onInput={(e) => setBandwidth(e.target.value)} />
      </label>
      <label>
        <input name="post_copy" type="checkbox" checked={postCopy}
               onChange={(e) => setPostCopy(e.target.checked)} /> post-copy
      </label>
      {error && <p class="error" role="alert" data-migrate-error>{error}</p>}
      <button type="submit" data-action="confirm-migrate" disabled={busy}>Migrate</button>
      <button type="button" onClick={onClose}>Cancel</button>
    </form>
  );
}
