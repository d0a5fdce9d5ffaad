// host-evacuate.jsx: the host page's confirmation before its VMs move
// (maintenance switched on, or Evacuate…), with the memory check offered
// (verify_memory: each live migration compares the guest RAM of both
// sides before its switch, docs/cluster.md), and the evacuation task's
// report: each VM moved or not, where, why, and "memory verified" when
// its migration compared the RAM.
import { useState } from 'preact/hooks';
import { Dialog } from './dialog-kit.jsx';

// what: 'maintenance' or 'evacuate'. onConfirm(body): the request's body.
// offline: the host is offline (maintenance only sets its flag then).
export function EvacuateDialog({ host, what, offline, onConfirm, onClose }) {
  const [verify, setVerify] = useState(false);
  const title = what === 'maintenance' ? `Put host ${host} into maintenance?` : `Evacuate host ${host}?`;
  function submit(e) {
    e.preventDefault();
    onConfirm(verify ? { verify_memory: true } : {});
  }
  return (
    <Dialog class="dialog confirm evacuate" aria-modal="true" aria-labelledby="evacuate-title"
            onSubmit={submit} onClose={onClose}>
      <h2 id="evacuate-title">{title}</h2>
      {offline ? (
        <p>It is offline: only its maintenance flag is set now, no VM moves. Once it is back,
          Evacuate… moves its VMs.</p>
      ) : (
        <>
          <p>Every VM on it moves to another host (running ones migrate live).</p>
          <label>
            <input name="verify_memory" type="checkbox" checked={verify}
                   onChange={(e) => setVerify(e.target.checked)} /> verify memory
          </label>
          <p class="note">Compares each guest's RAM on both hosts before it switches: the guest
            pauses about 1 s per 128 MiB of RAM meanwhile.</p>
        </>
      )}
      <button type="submit" data-action="confirm-evacuate">
        {what === 'maintenance' ? 'Enter maintenance' : 'Evacuate'}
      </button>
      <button type="button" onClick={onClose}>Cancel</button>
    </Dialog>
  );
}

// The host-evacuate task's result.vms, one row each.
export function EvacuationReport({ result }) {
  const vms = (result && result.vms) || [];
  if (!vms.length) return null;
  return (
    <table class="vm-table" data-evacuation-report>
      <thead><tr><th>VM</th><th>Result</th><th>Host</th><th>Memory</th><th>Reason</th></tr></thead>
      <tbody>
        {vms.map((v) => (
          <tr key={v.vm} data-report-vm={v.vm} data-result={v.result}>
            <td>{v.vm}</td><td>{v.result}</td><td>{v.host || '–'}</td>
            <td data-field="memory">{v.memory_verified ? 'memory verified' : '–'}</td>
            <td>{v.reason || ''}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
