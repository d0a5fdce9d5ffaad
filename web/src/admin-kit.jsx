// admin-kit.jsx: what the admin pages share (users, tokens, projects,
// schedules): a list read from the API and read again after every change
// made through it, a delete asked twice, and times as the API gives them.
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';

export function when(t) {
  return t ? t.replace('T', ' ').replace('Z', '') : 'never';
}

// A row's delete or revoke, asked twice (the second click does it).
export function ConfirmButton({ label, confirmLabel, action, onDo, disabled, title }) {
  const [asking, setAsking] = useState(false);
  if (!asking)
    return <button data-action={action} disabled={disabled} title={title} onClick={() => setAsking(true)}>{label}</button>;
  return (
    <>
      <button data-action={`confirm-${action}`} class="danger" onClick={() => { setAsking(false); onDo(); }}>
        {confirmLabel}
      </button>
      <button onClick={() => setAsking(false)}>Cancel</button>
    </>
  );
}

// Reads a list (GET path: an array, or the array under `key` of the
// answer) and reloads it after every change made here; change() answers
// the API's answer, or null after showing its refusal (onError).
export function useList(path, onError, key) {
  const [list, setList] = useState(null);
  // Answers whether it read the list (false: failed, its message shown).
  const load = () => api('GET', path).then((doc) => {
    const items = key ? doc && doc[key] : doc;
    setList(Array.isArray(items) ? items : []);
    return true;
  }, (e) => { onError(e.message); return false; });
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
  return [list, change, load];
}
