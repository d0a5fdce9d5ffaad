// tasks.jsx: the task log at the bottom: operations as the event stream
// reports them (kind, target, who asked, progress, result or error); a
// migration's or evacuation's live details (phase, bytes sent of the
// total, the downtime QEMU expects) beside its bar.
import { formatBytes } from './api.js';

function detailsOf(d) {
  if (!d || !d.phase) return '';
  const parts = [d.phase];
  if (d.bytes_total) parts.push(`${formatBytes(d.bytes_sent || d.bytes_copied || 0)} of ${formatBytes(d.bytes_total)}`);
  if (d.expected_downtime_ms) parts.push(`downtime ~${d.expected_downtime_ms} ms`);
  return parts.join(', ');
}

export function TaskLog({ tasks }) {
  return (
    <section class="tasks" aria-label="Task log">
      <h2>Tasks</h2>
      <table>
        <thead>
          <tr><th>Started</th><th>Task</th><th>Target</th><th>By</th><th>Progress</th><th>State</th></tr>
        </thead>
        <tbody>
          {tasks.slice(0, 50).map((t) => (
            <tr key={t.id} data-task={t.id} data-kind={t.kind} data-target={t.target}
                data-state={t.state}>
              <td>{(t.created_at || '').replace('T', ' ').replace('Z', '')}</td>
              <td>{t.kind}</td>
              <td>{t.target}</td>
              <td>{t.requested_by ? t.requested_by.who : ''}</td>
              <td>
                <progress max="100" value={t.progress || 0} aria-label="progress" />
                {t.details && t.details.phase && <span class="task-details" data-details> {detailsOf(t.details)}</span>}
              </td>
              <td class={`task-${t.state}`}>
                {t.state}
                {t.error ? `: ${t.error.message}` : ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
