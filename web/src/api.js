// api.js: the web UI's only way to vireod: its public REST API (JSON) with
// the browser session's cookie, the CSRF token on every change, and the
// event stream (GET /v1/events, Server-Sent Events) for live updates.

const CSRF_KEY = 'vireo.csrf';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function csrfToken() {
  return sessionStorage.getItem(CSRF_KEY);
}

// One request; resolves to the JSON answer, rejects with an ApiError that
// carries the API's own message ({"error":{"code","message"}}).
export async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken()) headers['X-CSRF-Token'] = csrfToken();
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `vireod does not answer: ${e.message}`);
  }
  const text = await resp.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = null;
  }
  if (!resp.ok) {
    const err = doc && doc.error;
    throw new ApiError(resp.status, err ? err.code : 'http-' + resp.status,
                       err ? err.message : `HTTP ${resp.status}`);
  }
  return doc;
}

export async function login(user, password) {
  const s = await api('POST', '/v1/login', { user, password });
  sessionStorage.setItem(CSRF_KEY, s.csrf_token);
  return s;
}

export async function logout() {
  try {
    await api('POST', '/v1/logout', {});
  } finally {
    sessionStorage.removeItem(CSRF_KEY);
  }
}

// Who this session is ({principal, role}), or null when it is not logged in.
export async function whoami() {
  if (!csrfToken()) return null;
  try {
    return await api('GET', '/v1/whoami');
  } catch (e) {
    if (e.status === 401) {
      sessionStorage.removeItem(CSRF_KEY);
      return null;
    }
    throw e;
  }
}

// Follows the event stream: onEvent(kind, doc) for every change; the
// browser's EventSource reconnects by itself with Last-Event-ID.
export function followEvents(onEvent, onState) {
  const es = new EventSource('/v1/events?kind=vm,operation,network,pool,image,host');
  for (const kind of ['vm', 'operation', 'network', 'pool', 'image', 'host'])
    es.addEventListener(kind, (ev) => {
      try {
        onEvent(kind, JSON.parse(ev.data));
      } catch {
        /* a malformed event is skipped */
      }
    });
  es.onopen = () => onState && onState(true);
  es.onerror = () => onState && onState(false);
  return () => es.close();
}

// The VM's serial console: a WebSocket (the session's cookie goes with it).
export function consoleSocket(vm) {
  const ws = new WebSocket(wsUrl(vm, 'console'));
  ws.binaryType = 'arraybuffer';
  return ws;
}

// A VM's WebSocket route (console, vnc) as a URL of this origin; the
// session's cookie goes with it.
export function wsUrl(vm, what) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/v1/vms/${encodeURIComponent(vm)}/${what}`;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}
