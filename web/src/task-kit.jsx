// task-kit.jsx: what the pages that start tasks share (snapshots, hardware,
// backups, pools): a change sent to the API whose 202 task is followed
// through the event stream (the task log's list), its progress line, a
// refusal or a failed task shown with the API's message, and the page's
// lists read again when the task ends (or at once for a change without one).
// A task the list does not have (a user with roles on projects only has no
// event stream) is read by its id (GET /v1/tasks/ID) every second until it
// ends or the page goes.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from './api.js';

export const ENDED = ['succeeded', 'failed', 'cancelled'];

function useTaskRead(pending, tasks) {
  const [read, setRead] = useState(null);
  const listed = useRef(tasks);
  listed.current = tasks;
  const id = pending && pending.id;
  useEffect(() => {
    setRead(null);
    if (!id) return undefined;
    let timer = null;
    let gone = false;
    let left = 900; // at most 15 minutes of reads
    const tick = async () => {
      if (--left < 0) return;
      const inList = listed.current.find((t) => t.id === id);
      if (inList && ENDED.includes(inList.state)) return;
      if (!inList) {
        try {
          const t = await api('GET', `/v1/tasks/${id}`);
          if (gone) return;
          setRead(t);
          if (ENDED.includes(t.state)) return;
        } catch {
          /* read again at the next tick */
        }
      }
      if (!gone) timer = setTimeout(tick, 1000);
    };
    timer = setTimeout(tick, 1000);
    return () => {
      gone = true;
      clearTimeout(timer);
    };
  }, [id]);
  return read;
}

export function useTask(tasks, onError, reload) {
  const [pending, setPending] = useState(null); // {id, what} of the task this page started
  const read = useTaskRead(pending, tasks);
  const task = pending && (tasks.find((t) => t.id === pending.id) || read);
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
