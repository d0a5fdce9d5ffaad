// vm-clone.jsx: the Clone action of a VM's page: a name and the "full copy"
// box (POST /v1/vms/VM/clone, a `clone` task followed in its line and the
// task log); the new VM shows in the tree as soon as it is defined (the
// event stream). The box can be cleared (a linked clone: an RBD snapshot
// and clone of each disk) only when every disk is in an rbd pool, as the
// API allows. The source must be stopped and the route is the admin's:
// the button says so when it is disabled (the API's 409 and 403 guard).
import { useState } from 'preact/hooks';
import { useTask, TaskLine, denial } from './task-kit.jsx';
import { Dialog } from './dialog-kit.jsx';

const STOPPED = ['defined', 'stopped', 'crashed'];

// Every disk of vm in an rbd pool (its volume "POOL/NAME"): linked clones possible.
function allDisksOnRbd(vm, pools) {
  const disks = vm.disks || [];
  return disks.length > 0 && disks.every((d) => {
    const pool = (d.volume || '').split('/')[0];
    return pools.some((p) => p.name === pool && p.type === 'rbd');
  });
}

export function CloneVm({ vm, role, pools = [], tasks, onError }) {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState('');
  const [full, setFull] = useState(true);
  const { run, task, pending, busy } = useTask(tasks, onError, () => {});
  const canAdmin = role === 'admin';
  const stopped = STOPPED.includes(vm.state);
  const why = denial(canAdmin, 'admin', role) || (!stopped ? 'stop the VM first' : undefined);
  const linkable = allDisksOnRbd(vm, pools);

  function submit(ev) {
    ev.preventDefault();
    run(`clone as ${name}`, 'POST', `/v1/vms/${encodeURIComponent(vm.name)}/clone`, { name, full: full || !linkable });
  }

  return (
    <>
      <button data-action="clone" disabled={!canAdmin || !stopped || busy} title={why}
              onClick={() => setOpen(!open)}>Clone…</button>
      {open && (
        // A dialog (dialog-kit.jsx): Escape closes it, the focus back on Clone….
        <Dialog class="inline-form clone-form" aria-label="Clone" onClose={() => setOpen(false)}
                onSubmit={submit}>
          <label for="clone-name">New VM</label>
          <input id="clone-name" value={name} required pattern="[a-z0-9][a-z0-9\-]{0,62}"
                 onInput={(e) => setName(e.target.value)} />
          <label title={linkable ? 'each disk copied whole; cleared: a linked clone (an RBD '
                                 + 'snapshot of each disk and a clone of it)'
                                 : 'each disk copied whole (a linked clone needs every disk '
                                 + 'in an rbd pool)'}>
            <input id="clone-full" type="checkbox" checked={full || !linkable}
                   disabled={!linkable} onChange={(e) => setFull(e.target.checked)} /> full copy
          </label>
          <button type="submit" data-action="clone-submit" disabled={!canAdmin || busy || !name}>
            Clone
          </button>
          <TaskLine pending={pending} task={task} />
        </Dialog>
      )}
    </>
  );
}
