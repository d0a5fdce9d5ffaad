// network-page.jsx: the networks (docs/network-api.md). One network's page:
// its type, bridge, subnet, gateway and DHCP range (as the API gives them),
// its state, the DHCP leases with the VM each MAC belongs to, the NICs on
// it, and its delete (admin; asked once more; the API refuses it while a
// NIC uses it, and the page shows its message). The list page (#/networks)
// has every network and the create form (a nat or isolated network; the
// other types are the CLI's). The list follows the event stream (main.jsx).
// Each network shows its project (none: shared by all projects); a create
// names one where the user may create (project-kit.jsx), and the cluster's
// admins move a network to another project or out of any.
import { useState } from 'preact/hooks';
import { api } from './api.js';
import { ConfirmButton, when } from './admin-kit.jsx';
import { denial } from './task-kit.jsx';
import { roleIn, useProjectNames, creatable, firstChoice, ProjectSelect, ProjectCell,
         ProjectMove } from './project-kit.jsx';
import './pages.css';

function nicsOn(network, vms) {
  const out = [];
  for (const vm of vms)
    for (const nic of vm.nics || [])
      if (nic.network === network) out.push({ vm: vm.name, ...nic });
  return out;
}

function Leases({ network, vms }) {
  const owner = (mac) => {
    const found = vms.find((v) => (v.nics || []).some((n) => (n.mac || '').toLowerCase() === mac.toLowerCase()));
    return found ? found.name : null;
  };
  const leases = network.leases || [];
  if (!leases.length) return <p class="note" data-leases="0">No DHCP leases.</p>;
  return (
    <table data-leases={leases.length}>
      <thead><tr><th>IP</th><th>MAC</th><th>VM</th><th>Host name</th><th>Expires</th></tr></thead>
      <tbody>
        {leases.map((l) => (
          <tr key={l.mac} data-lease={l.ip}>
            <td>{l.ip}</td><td>{l.mac}</td>
            <td>{owner(l.mac) ? <a href={`#/vm/${owner(l.mac)}`}>{owner(l.mac)}</a> : '–'}</td>
            <td>{l.hostname || '–'}</td>
            <td>{l.expires ? when(new Date(l.expires * 1000).toISOString().replace(/\.\d+Z$/, 'Z')) : '–'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// A change to the networks: the API's answer, or null after showing its
// refusal; the tree's list follows through the event stream, and is read
// again after the change (onChanged: a network's project is written after
// its event).
async function change(onError, method, path, body, onChanged) {
  onError(null);
  try {
    const answer = (await api(method, path, body)) || {};
    if (onChanged) onChanged();
    return answer;
  } catch (e) {
    onError(e.message);
    return null;
  }
}

export function NetworkPage({ network, vms, who, onError, onChanged }) {
  const role = who.role;
  const canAdmin = roleIn(who, network.project) === 'admin';
  const names = useProjectNames();
  const path = `/v1/networks/${encodeURIComponent(network.name)}`;
  const nics = nicsOn(network.name, vms);
  const range = network.dhcp_range;
  return (
    <article class="network-page" aria-labelledby="network-title">
      <h1 id="network-title">Network {network.name}</h1>
      <dl class="summary">
        <dt>Type</dt><dd>{network.type}</dd>
        <dt>State</dt><dd data-field="state">{network.state}{network.error ? `: ${network.error}` : ''}</dd>
        <dt>Bridge</dt><dd>{network.bridge || '–'}</dd>
        <dt>Subnet</dt><dd data-field="subnet">{network.subnet || '–'}</dd>
        <dt>Gateway</dt><dd data-field="gateway">{network.gateway || '–'}</dd>
        <dt>DHCP</dt>
        <dd data-field="dhcp">{network.dhcp === false ? 'off' : range ? `${range.start} – ${range.end}`
          : network.dhcp ? 'on' : '–'}</dd>
        {network.vlan_id && <><dt>VLAN</dt><dd>{network.vlan_id} on {network.uplink}</dd></>}
        {network.vni && <><dt>VNI</dt><dd>{network.vni}</dd></>}
        <dt>Project</dt>
        <dd data-field="project">
          {network.project || '– (shared by all projects)'}{' '}
          {role === 'admin' && (
            <ProjectMove id="network-move" key={network.project || ''} current={network.project} names={names}
                         onMove={(to) => change(onError, 'PATCH', path, { project: to }, onChanged)} />
          )}
        </dd>
        <dt>NICs</dt>
        <dd data-field="nics">
          {nics.length ? nics.map((n) => <div key={n.mac}><a href={`#/vm/${n.vm}/hardware`}>{n.vm}</a> {n.mac}</div>)
            : 'none'}
        </dd>
      </dl>
      <h2>DHCP leases</h2>
      <Leases network={network} vms={vms} />
      <p>
        <ConfirmButton label="Delete network…" confirmLabel={`Delete ${network.name}`} action="network-delete"
                       disabled={!canAdmin} title={denial(canAdmin, 'admin', role)}
                       onDo={() => change(onError, 'DELETE', path)
                         .then((done) => done && (location.hash = '#/networks'))} />
      </p>
    </article>
  );
}

export function Networks({ networks, who, onError, onChanged }) {
  const [form, setForm] = useState({ name: '', type: 'nat', subnet: '', dhcp: true, project: null });
  const [busy, setBusy] = useState(false);
  const choices = creatable(who, useProjectNames());
  const project = form.project ?? firstChoice(choices);
  const canCreate = choices.length > 0;

  async function create(ev) {
    ev.preventDefault();
    const body = { name: form.name, type: form.type, dhcp: form.dhcp };
    if (form.subnet) body.subnet = form.subnet;
    if (project) body.project = project;
    setBusy(true);
    const made = await change(onError, 'POST', '/v1/networks', body, onChanged);
    setBusy(false);
    if (made) location.hash = `#/network/${encodeURIComponent(form.name)}`;
  }

  return (
    <article aria-labelledby="networks-title">
      <h1 id="networks-title">Networks</h1>
      <form class="inline-form" onSubmit={create}>
        <label for="network-name">Name</label>
        <input id="network-name" required value={form.name} onInput={(e) => setForm({ ...form, name: e.target.value })} />
        <label for="network-type">Type</label>
        <select id="network-type" value={form.type} onChange={(e) => setForm({ ...form, type: e.target.value })}>
          <option value="nat">nat (VMs reach out through the host)</option>
          <option value="isolated">isolated (VMs and the host only)</option>
        </select>
        <label for="network-subnet">Subnet</label>
        <input id="network-subnet" placeholder="empty: one is picked" value={form.subnet}
               onInput={(e) => setForm({ ...form, subnet: e.target.value })} />
        <label>
          <input type="checkbox" id="network-dhcp" checked={form.dhcp}
                 onChange={(e) => setForm({ ...form, dhcp: e.target.checked })} /> DHCP
        </label>
        <ProjectSelect id="network-project" choices={choices} value={project}
                       onChange={(p) => setForm({ ...form, project: p })} />
        <button type="submit" data-action="network-create" disabled={!canCreate || busy}
                title={denial(canCreate, 'admin', who.role)}>Create network</button>
      </form>
      <table data-networks={networks.length}>
        <thead><tr><th>Network</th><th>Type</th><th>Subnet</th><th>State</th><th>Leases</th><th>Project</th></tr></thead>
        <tbody>
          {networks.map((n) => (
            <tr key={n.name} data-network={n.name}>
              <td><a href={`#/network/${encodeURIComponent(n.name)}`}>{n.name}</a></td>
              <td>{n.type}</td><td>{n.subnet || '–'}</td><td>{n.state}</td><td>{(n.leases || []).length}</td>
              <ProjectCell obj={n} />
            </tr>
          ))}
        </tbody>
      </table>
    </article>
  );
}
