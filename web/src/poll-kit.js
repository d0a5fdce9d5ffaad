// poll-kit.js: how the pages of a user with roles on projects only (no
// event stream, docs/web.md) keep a list current: read again POLL_MS after
// the last read ended (never two at once), nothing while the browser's tab
// is hidden, at once when it is shown again.
export const POLL_MS = 5000;

// Calls read() (async) now, or first after ms with later; answers the stop.
export function pollWhileShown(read, { ms = POLL_MS, later = false } = {}) {
  let timer = null;
  let busy = false;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (stopped || busy || document.hidden) return;
    busy = true;
    try {
      await read();
    } finally {
      busy = false;
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  const shown = () => { if (!timer && !busy) tick(); };
  document.addEventListener('visibilitychange', shown);
  if (later) timer = setTimeout(tick, ms);
  else tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', shown);
  };
}

// A user whose roles are on projects only (no role on the whole cluster).
export const projectOnly = (who) => who.role === 'none';
