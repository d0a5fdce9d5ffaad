// task-kit.jsx: what the pages that start tasks share (snapshots, hardware,
// backups, pools): a change sent to the API whose 202 task is followed
// through the event stream (the task log's list), its progress line, a
// refusal or a failed task shown with the API's message, and the page's
// lists read again when the task ends (or at once for a change without one).
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';

export const ENDED = ['succeeded', 'failed', 'cancelled'];

export function useTask(tasks, onError, reload) {
  const [pending, setPending] = useState(null); // {id, what} of the task this page started
  const task = pending && tasks.find((t) => t.id === pending.id);
  const ended = task && ENDED.includes(task.state);
  const endedId = ended ? pending.id : null;
  useEffect(() => {
    if (!endedId) return;
    if (task.state === 'failed') onError(`${pending.what}: ${task.error ? task.error.message : 'failed'}`);
    reload();
  }, [endedId]);

  // The API's answer ({} for none), or null after showing its refusal.
  async function run(what, method, path, body) {
    onError(null);
    try {
      const answer = (await api(method, path, body)) || {};
      const id = answer.task && answer.task.id;
      setPending(id ? { id, what } : null);
      if (!id) reload();
      return answer;
    } catch (e) {
      onError(e.message);
      return null;
    }
  }
  return { run, task, pending, busy: Boolean(pending && !ended) };
}

// The progress of the task a page started: what, its kind, a bar, its state
// (`data-task-line` holds the state, for the browser tests).
export function TaskLine({ pending, task, attrs = {} }) {
  if (!pending || !task) return null;
  return (
    <p class="task-line" data-task-line={task.state} {...attrs}>
      {pending.what}: {task.kind} <progress max="100" value={task.progress || 0} /> {task.state}
      {task.message ? ` (${task.message})` : ''}
    </p>
  );
}

// The title of a button the role cannot use (undefined when it can).
export function denial(allowed, needed, role) {
  return allowed ? undefined : `needs the ${needed} role (yours: ${role})`;
}
