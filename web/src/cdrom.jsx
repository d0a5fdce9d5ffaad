// cdrom.jsx: the CD-ROM part of a VM's Hardware tab: its drive and the ISO
// in it (the VM's `cdrom`), an ISO inserted or ejected (POST
// /v1/vms/VM/cdrom: a cdrom-insert or cdrom-eject task, the medium changed
// in QEMU while the VM runs; on a stopped VM the definition, which gets a
// drive if it had none), the firmware's boot order as the VM has it, and a
// start that boots the CD once (POST /v1/vms/VM/start with `boot_once`).
// The ISOs offered are the `iso` volumes of every pool the user sees
// (GET /v1/volumes: dir, nfs and rbd pools alike). The API decides (a
// running VM without a drive, an HA VM and a host's own ISO: 409) and its
// refusal is shown as it words it. The changes are the admin's, the start
// the operator's (the buttons are a convenience: the API's 403 guards).
import { useState } from 'preact/hooks';
import { formatBytes } from './api.js';
import { useList } from './admin-kit.jsx';
import { useTask, TaskLine, denial } from './task-kit.jsx';

const BOOT_DEFAULT = ['disk', 'cdrom'];

export function CdromDrive({ vm, role, tasks, onError }) {
  const path = `/v1/vms/${encodeURIComponent(vm.name)}`;
  const [volumes, , loadVolumes] = useList('/v1/volumes', onError, 'volumes');
  const { run, task, pending, busy } = useTask(tasks, onError, loadVolumes);
  const [chosen, setChosen] = useState('');
  const canAdmin = role === 'admin';
  const canOperate = canAdmin || role === 'operator';
  const deny = denial(canAdmin, 'admin', role);
  const isos = (volumes || []).filter((v) => v.content === 'iso' && v.state !== 'creating');
  const inserted = vm.cdrom ? vm.cdrom.volume || null : null;
  const choice = chosen || (isos[0] && isos[0].key) || '';
  const stopped = ['defined', 'stopped', 'crashed'].includes(vm.state);
  const boot = vm.boot || BOOT_DEFAULT;

  function insert(ev) {
    ev.preventDefault();
    run(`insert ${choice}`, 'POST', `${path}/cdrom`, { volume: choice });
  }

  return (
    <>
      <h2>CD-ROM</h2>
      <p data-cdrom={vm.cdrom ? inserted || '' : 'none'}>
        {!vm.cdrom ? 'No CD-ROM drive (inserting an ISO while the VM is stopped adds one).'
          : inserted ? <>Drive (SATA): <strong data-field="cdrom-volume">{inserted}</strong></>
            : 'Drive (SATA): empty'}
      </p>
      <form class="inline-form" onSubmit={insert}>
        <label for="hw-cdrom-iso">ISO</label>
        <select id="hw-cdrom-iso" value={choice} onChange={(e) => setChosen(e.target.value)}>
          {isos.map((v) => (
            <option key={v.key} value={v.key}>{v.key} ({formatBytes(v.virtual_size_bytes)})</option>
          ))}
        </select>
        <button type="submit" data-action="cdrom-insert" disabled={!canAdmin || busy || !choice}
                title={deny || (!choice ? 'no ISO volume in the pools you see' : undefined)}>Insert</button>
        <button type="button" data-action="cdrom-eject" disabled={!canAdmin || busy || !inserted}
                title={deny} onClick={() => run(`eject ${inserted}`, 'POST', `${path}/cdrom`, { volume: null })}>
          Eject
        </button>
      </form>
      <p class="note" data-field="boot-order">
        Boot order: {boot.join(', ')} (set when the VM is made).{' '}
        <button type="button" data-action="start-from-cdrom"
                disabled={!canOperate || busy || !stopped || !vm.cdrom}
                title={denial(canOperate, 'operator', role)
                       || (!stopped ? 'only while the VM is stopped' : !vm.cdrom ? 'the VM has no CD-ROM drive' : undefined)}
                onClick={() => run('start from the CD', 'POST', `${path}/start`, { boot_once: 'cdrom' })}>
          Start from the CD once
        </button>
      </p>
      <TaskLine pending={pending} task={task} attrs={{ 'data-cdrom-task': '1' }} />
    </>
  );
}
