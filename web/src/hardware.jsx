// hardware.jsx: a VM's Hardware tab: CPUs and memory (PATCH /v1/vms/VM:
// live on a running VM up to its maximums, a set-resources task; the
// maximums and the display only while it is stopped), its disks (add a new
// volume or an existing one, remove: /v1/vms/VM/disks, hot-plugged while it
// runs) and its NICs (add on a network, remove: /v1/vms/VM/nics). The same
// requests `vireo vm set`, `vm disk` and `vm nic` send; the API decides
// what a running VM may change and its refusal is shown as it words it.
// The CD-ROM drive, its ISO and the boot order: cdrom.jsx.
// Changing hardware is the admin's (the buttons are a convenience).
import { useEffect, useState } from 'preact/hooks';
import { formatBytes } from './api.js';
import { ConfirmButton, useList } from './admin-kit.jsx';
import { useTask, TaskLine, denial } from './task-kit.jsx';
import { CdromDrive } from './cdrom.jsx';
import './pages.css';

const MiB = 1048576;

// The fields of the CPU and memory form that differ from the VM's.
function resourceChanges(form, vm) {
  const body = {};
  for (const [field, key] of [['vcpus', 'vcpus'], ['memory', 'memory_mib'], ['max_vcpus', 'max_vcpus'],
                              ['max_memory', 'max_memory_mib']])
    if (form[field] !== '' && Number(form[field]) !== vm[key]) body[key] = Number(form[field]);
  return body;
}

function resourceForm(vm) {
  return { vcpus: vm.vcpus, memory: vm.memory_mib, max_vcpus: vm.max_vcpus || vm.vcpus,
           max_memory: vm.max_memory_mib || vm.memory_mib };
}

export function Hardware({ vm, role, networks, pools, tasks, onError }) {
  const path = `/v1/vms/${encodeURIComponent(vm.name)}`;
  const [disks, , loadDisks] = useList(`${path}/disks`, onError, 'disks');
  const [nics, , loadNics] = useList(`${path}/nics`, onError, 'nics');
  const [volumes, , loadVolumes] = useList('/v1/volumes', onError, 'volumes');
  const reload = () => { loadDisks(); loadNics(); loadVolumes(); };
  const { run, task, pending, busy } = useTask(tasks, onError, reload);
  const [res, setRes] = useState(resourceForm(vm));
  const [display, setDisplay] = useState(vm.display || 'none');
  const dirPools = pools.filter((p) => p.type !== 'backup');
  const [disk, setDisk] = useState({ kind: 'new', size: 64, pool: 'default', format: 'qcow2', volume: '' });
  const [network, setNetwork] = useState(networks[0] ? networks[0].name : '');
  const canAdmin = role === 'admin';
  const deny = denial(canAdmin, 'admin', role);
  const active = !['defined', 'stopped', 'crashed'].includes(vm.state);
  const free = (volumes || []).filter((v) => !v.attached_to && v.state !== 'creating');

  // The form follows the VM (a live change, another session's) while the
  // fields are not being edited.
  useEffect(() => { setRes(resourceForm(vm)); },
            [vm.vcpus, vm.memory_mib, vm.max_vcpus, vm.max_memory_mib]);
  useEffect(() => { setDisplay(vm.display || 'none'); }, [vm.display]);
  useEffect(() => { reload(); }, [vm.state]);

  function setResources(ev) {
    ev.preventDefault();
    const body = resourceChanges(res, vm);
    if (!Object.keys(body).length) {
      onError('nothing to change: the CPUs and memory are as shown');
      return;
    }
    run('CPUs and memory', 'PATCH', path, body);
  }

  function addDisk(ev) {
    ev.preventDefault();
    const body = disk.kind === 'new'
      ? { size_bytes: Math.round(Number(disk.size) * MiB), pool: disk.pool, format: disk.format }
      : { volume: disk.volume || (free[0] && free[0].key) };
    run(disk.kind === 'new' ? `new ${disk.size} MiB disk` : `disk ${body.volume}`, 'POST', `${path}/disks`, body);
  }

  const set = (k) => (e) => setRes({ ...res, [k]: e.target.value });
  const setD = (k) => (e) => setDisk({ ...disk, [k]: e.target.value });
  const num = (id, label, k, min, disabled) => (
    <>
      <label for={id}>{label}</label>
      <input id={id} type="number" min={min} value={res[k]} onInput={set(k)} disabled={disabled}
             title={disabled ? 'only while the VM is stopped' : undefined} />
    </>
  );
  return (
    <section class="hardware" aria-label="Hardware">
      <h2>CPUs and memory</h2>
      <form class="inline-form" onSubmit={setResources}>
        {num('hw-vcpus', 'vCPUs', 'vcpus', 1)}
        {num('hw-memory', 'Memory (MiB)', 'memory', 16)}
        {num('hw-max-vcpus', 'at most', 'max_vcpus', 1, active)}
        {num('hw-max-memory', 'at most (MiB)', 'max_memory', 16, active)}
        <button type="submit" data-action="hw-resources" disabled={!canAdmin || busy} title={deny}>Apply</button>
      </form>
      <p class="note" data-hw-live={active ? '1' : '0'}>
        {active
          ? `Running: vCPUs and memory change live (hot-plug) up to ${vm.max_vcpus || vm.vcpus} vCPUs and `
            + `${formatBytes((vm.max_memory_mib || vm.memory_mib) * MiB)}; the maximums change while it is stopped.`
          : 'Stopped: every change takes effect at the next start.'}
        {vm.vcpus_plugged !== undefined ? ` The guest has ${vm.vcpus_plugged} vCPU(s)` : ''}
        {vm.memory_actual_mib !== undefined ? ` and ${formatBytes(vm.memory_actual_mib * MiB)}.` : ''}
      </p>

      <h2>Display</h2>
      <form class="inline-form" onSubmit={(ev) => { ev.preventDefault(); run('display', 'PATCH', path, { display }); }}>
        <label for="hw-display">Display</label>
        <select id="hw-display" value={display} onChange={(e) => setDisplay(e.target.value)}>
          <option value="none">none (serial console only)</option>
          <option value="vga">VGA</option>
          <option value="virtio">virtio-vga</option>
        </select>
        <button type="submit" data-action="hw-display" disabled={!canAdmin || busy} title={deny}>Apply</button>
        <span class="note">changes while the VM is stopped</span>
      </form>

      <h2>Disks</h2>
      {disks === null ? <p class="loading">Loading…</p> : (
        <table data-disks={disks.length}>
          <thead><tr><th>#</th><th>Volume</th><th>Format</th><th>Bus</th><th>Kind</th><th /></tr></thead>
          <tbody>
            {disks.map((d) => (
              <tr key={d.slot} data-disk={d.index} data-volume={d.volume}>
                <td>{d.index}</td>
                <td>{d.volume}</td>
                <td>{d.format}</td>
                <td>{d.bus || ''}</td>
                <td>{[d.boot || d.index === 0 ? 'boot' : '', d.readonly ? 'read-only' : '',
                      d.shareable ? 'shareable' : '', d.owned ? 'own volume' : 'attached volume']
                  .filter(Boolean).join(', ')}</td>
                <td class="row-actions">
                  {d.index !== 0 && (
                    <ConfirmButton label="Remove…" confirmLabel={`Remove disk ${d.index} (the volume stays)`}
                                   action="disk-remove" disabled={!canAdmin || busy} title={deny}
                                   onDo={() => run(`remove disk ${d.index}`, 'DELETE', `${path}/disks/${d.index}`)} />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="inline-form" onSubmit={addDisk}>
        <label><input type="radio" name="hw-disk-kind" value="new" checked={disk.kind === 'new'}
                      onChange={setD('kind')} /> new volume</label>
        <label for="hw-disk-size">size (MiB)</label>
        <input id="hw-disk-size" type="number" min="1" value={disk.size} onInput={setD('size')}
               disabled={disk.kind !== 'new'} />
        <label for="hw-disk-pool">pool</label>
        <select id="hw-disk-pool" value={disk.pool} onChange={setD('pool')} disabled={disk.kind !== 'new'}>
          {dirPools.map((p) => <option key={p.name} value={p.name}>{p.name}</option>)}
        </select>
        <select id="hw-disk-format" aria-label="format" value={disk.format} onChange={setD('format')}
                disabled={disk.kind !== 'new'}>
          <option value="qcow2">qcow2</option>
          <option value="raw">raw</option>
        </select>
        <label><input type="radio" name="hw-disk-kind" value="existing" checked={disk.kind === 'existing'}
                      onChange={setD('kind')} /> existing volume</label>
        <select id="hw-disk-volume" aria-label="volume" value={disk.volume} onChange={setD('volume')}
                disabled={disk.kind !== 'existing'}>
          {free.map((v) => <option key={v.key} value={v.key}>{v.key} ({formatBytes(v.virtual_size_bytes)})</option>)}
        </select>
        <button type="submit" data-action="disk-add" disabled={!canAdmin || busy} title={deny}>Add disk</button>
      </form>

      <h2>NICs</h2>
      {nics === null ? <p class="loading">Loading…</p> : (
        <table data-nics={nics.length}>
          <thead><tr><th>#</th><th>Network</th><th>MAC</th><th>Model</th><th>IP</th><th /></tr></thead>
          <tbody>
            {nics.map((n) => (
              <tr key={n.slot} data-nic={n.index} data-network={n.network}>
                <td>{n.index}</td>
                <td><a href={`#/network/${n.network}`}>{n.network}</a></td>
                <td>{n.mac}</td>
                <td>{n.model || ''}</td>
                <td>{n.ip || '–'}</td>
                <td class="row-actions">
                  <ConfirmButton label="Remove…" confirmLabel={`Remove NIC ${n.index}`} action="nic-remove"
                                 disabled={!canAdmin || busy} title={deny}
                                 onDo={() => run(`remove NIC ${n.index}`, 'DELETE', `${path}/nics/${n.index}`)} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form class="inline-form"
            onSubmit={(ev) => { ev.preventDefault(); run(`NIC on ${network}`, 'POST', `${path}/nics`, { network }); }}>
        <label for="hw-nic-network">Network</label>
        <select id="hw-nic-network" value={network} onChange={(e) => setNetwork(e.target.value)}>
          {networks.map((n) => <option key={n.name} value={n.name}>{n.name}</option>)}
        </select>
        <button type="submit" data-action="nic-add" disabled={!canAdmin || busy} title={deny}>Add NIC</button>
      </form>
      <TaskLine pending={pending} task={task} />
      <CdromDrive vm={vm} role={role} tasks={tasks} onError={onError} />
    </section>
  );
}
