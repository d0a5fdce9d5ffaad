// post-copy-resume.jsx: a VM whose post-copy migration broke and could not
// be recovered (both QEMUs kept: docs/cluster.md, "Post-copy"): which host
// keeps its source QEMU and a "Resume migration" button that tries the
// recovery again at once (POST /v1/vms/VM/migrate {"resume": true}, as
// `vireo vm migrate VM --resume`), its task followed. What says so is the
// source host's live record (`post_copy_paused`, in the hosts' list and
// their events), so it shows and goes without a reload.
import { useTask, TaskLine, denial } from './task-kit.jsx';

// The host whose record lists the VM as paused, or undefined.
export const pausedAt = (vm, hosts) =>
  hosts.find((h) => (h.post_copy_paused || []).some((p) => p.vm === vm.id));

export function PostCopyResume({ vm, hosts, role, tasks, onError }) {
  const { run, task, pending, busy } = useTask(tasks, onError, () => {});
  const source = pausedAt(vm, hosts);
  if (!source && !pending) return null;
  const canAdmin = role === 'admin';
  return (
    <div class="banner post-copy" role="status" data-post-copy={source ? 'paused' : 'resumed'}>
      {source && (
        <p>
          Post-copy migration paused: the guest's memory is split between {vm.host} and{' '}
          <b data-field="post-copy-source">{source.name}</b>, which keeps the source QEMU; both stay
          paused until the link between them works and the recovery is tried again (in the
          background, or now).{' '}
          <button data-action="resume-migration" disabled={!canAdmin || busy} title={denial(canAdmin, 'admin', role)}
                  onClick={() => run('resume migration', 'POST', `/v1/vms/${vm.name}/migrate`, { resume: true })}>
            Resume migration
          </button>
        </p>
      )}
      <TaskLine pending={pending} task={task} attrs={{ 'data-resume-task': task && task.state }} />
    </div>
  );
}
