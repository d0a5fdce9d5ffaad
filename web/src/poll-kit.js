// poll-kit.js: how the pages of a user with roles on projects only (no
// event stream, docs/web.md), every user's pool page (the app follows
// no volume events), the graphs, the cluster page's etcd and DRS parts
// and HA's restart limit (ha-settings.jsx) keep what they show current: read again POLL_MS after
// the last read ended (never two at once), nothing while the browser's tab
// is hidden, at once when it is shown again. A failed read is retried by
// the next one, whose success takes its message away.
export const POLL_MS = 5000;

// Calls read() (async; it answers false when it failed and said so with
// setError) now, or first after ms with later; answers the stop. ms: a
// number, or a function answering the next wait (asked after each read).
export function pollWhileShown(read, { ms = POLL_MS, later = false, setError = null } = {}) {
  let timer = null;
  let busy = false;
  let stopped = false;
  let failed = false;
  const tick = async () => {
    timer = null;
    if (stopped || busy || document.hidden) return;
    busy = true;
    let ok = false;
    try {
      ok = (await read()) !== false;
    } finally {
      busy = false;
    }
    if (ok && failed && setError && !stopped) setError(null);
    failed = !ok;
    if (!stopped) timer = setTimeout(tick, typeof ms === 'function' ? ms() : ms);
  };
  const shown = () => { if (!timer && !busy) tick(); };
  document.addEventListener('visibilitychange', shown);
  if (later) timer = setTimeout(tick, typeof ms === 'function' ? ms() : ms);
  else tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', shown);
  };
}

// A user whose roles are on projects only (no role on the whole cluster).
export const projectOnly = (who) => who.role === 'none';
