// wizard.jsx: the create-VM wizard: name, image, CPUs, memory, disk size,
// network and its NIC's MAC (empty: a new one, unique in the cluster),
// display (none, or VGA / virtio-vga for the graphical console),
// project (docs/projects.md: its quotas are checked by the API),
// and, when the image takes cloud-init, a user and an SSH key;
// POST /v1/vms, then the new VM's page. The API checks everything again and
// its message is shown as it says it.
import { useState } from 'preact/hooks';
import { api } from './api.js';
import { useProjectNames } from './project-kit.jsx';

export function Wizard({ images, networks, role, onError }) {
  const [form, setForm] = useState({
    name: '', image: images[0] ? images[0].name : '', vcpus: 1, memory: 512, disk: '',
    network: networks[0] ? networks[0].name : '', mac: '', display: 'none', project: '', user: '', key: '',
  });
  const projects = useProjectNames();
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const image = images.find((i) => i.name === form.image);
  const cloudInit = image && image.cloud_init;

  async function submit(ev) {
    ev.preventDefault();
    setBusy(true);
    onError(null);
    const body = { name: form.name, vcpus: Number(form.vcpus), memory_mib: Number(form.memory) };
    if (form.image) body.image = form.image;
    if (form.disk !== '') body.disk_size_bytes = Math.round(Number(form.disk) * 1073741824);
    if (form.network) body.networks = [form.network];
    if (form.mac.trim()) body.macs = [form.mac.trim()];
    body.display = form.display;
    if (form.project) body.project = form.project;
    if (cloudInit && (form.user || form.key)) {
      body.cloud_init = {};
      if (form.user) body.cloud_init.user = form.user;
      if (form.key.trim()) body.cloud_init.ssh_keys = form.key.trim().split('\n').filter((l) => l.trim());
    }
    try {
      await api('POST', '/v1/vms', body);
      location.hash = `#/vm/${form.name}`;
    } catch (e) {
      onError(e.message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="wizard" onSubmit={submit} aria-labelledby="wizard-title">
      <h1 id="wizard-title">Create a VM</h1>
      <label for="vm-name">Name</label>
      <input id="vm-name" name="name" required pattern="[a-z0-9][a-z0-9\-]{0,62}" value={form.name}
             onInput={set('name')} autofocus />
      <label for="vm-image">Image</label>
      <select id="vm-image" name="image" value={form.image} onChange={set('image')}>
        {images.map((i) => <option key={i.name} value={i.name}>{i.name}{i.cloud_init ? ' (cloud-init)' : ''}</option>)}
      </select>
      <label for="vm-vcpus">CPUs</label>
      <input id="vm-vcpus" name="vcpus" type="number" min="1" max="64" required value={form.vcpus}
             onInput={set('vcpus')} />
      <label for="vm-memory">Memory (MiB)</label>
      <input id="vm-memory" name="memory" type="number" min="64" step="64" required value={form.memory}
             onInput={set('memory')} />
      <label for="vm-disk">Disk size (GiB; empty: the image's)</label>
      <input id="vm-disk" name="disk" type="number" min="1" step="1" value={form.disk}
             onInput={set('disk')} />
      <label for="vm-network">Network</label>
      <select id="vm-network" name="network" value={form.network} onChange={set('network')}>
        {networks.map((n) => <option key={n.name} value={n.name}>{n.name} ({n.type})</option>)}
        <option value="user">user (QEMU's user-mode network)</option>
      </select>
      <label for="vm-mac">MAC (empty: a new one)</label>
      <input id="vm-mac" name="mac" pattern="[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}" value={form.mac}
             onInput={set('mac')} placeholder="52:54:00:12:34:56" />
      <label for="vm-display">Display (the Screen tab)</label>
      <select id="vm-display" name="display" value={form.display} onChange={set('display')}>
        <option value="none">none (serial console only)</option>
        <option value="vga">VGA (any guest, installers)</option>
        <option value="virtio">virtio-vga (with a guest driver)</option>
      </select>
      <label for="vm-project">Project</label>
      <select id="vm-project" name="project" value={form.project} onChange={set('project')}>
        <option value="">default</option>
        {projects.filter((p) => p !== 'default').map((p) => <option key={p} value={p}>{p}</option>)}
      </select>
      {cloudInit && (
        <fieldset>
          <legend>cloud-init</legend>
          <label for="vm-user">User</label>
          <input id="vm-user" name="user" pattern="[a-z_][a-z0-9_\-]{0,31}" value={form.user}
                 onInput={set('user')} />
          <label for="vm-key">SSH public key</label>
          <textarea id="vm-key" name="key" rows="3" value={form.key} onInput={set('key')}
                    placeholder="ssh-ed25519 AAAA… you@laptop" />
        </fieldset>
      )}
      <div class="buttons">
        <button type="submit" disabled={busy || role !== 'admin'}
                title={role !== 'admin' ? `needs the admin role (yours: ${role})` : undefined}>
          Create
        </button>
        <a href="#/">Cancel</a>
      </div>
    </form>
  );
}
