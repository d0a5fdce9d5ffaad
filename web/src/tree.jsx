// tree.jsx: the navigation tree: the cluster's page, hosts with their VMs, then pools and
// networks, each with its state icon (a network of a project with its
// project's name); links are hash routes.

export const STATE_ICONS = {
  running: '▶', stopped: '■', defined: '■', paused: '❚❚', crashed: '✖', starting: '…', stopping: '…',
  migrating: '⇄', online: '●', offline: '○', active: '●', inactive: '○', maintenance: '⚒', fenced: '✖',
};

export function StateIcon({ state }) {
  return (
    <span class={`state state-${state}`} title={state} aria-label={state} role="img">
      {STATE_ICONS[state] || '●'}
    </span>
  );
}

// cluster: the user may read the cluster (not one with roles on projects only).
export function Tree({ hosts, vms, pools, networks, route, cluster = true }) {
  const hostNames = hosts.map((h) => h.name);
  const orphans = vms.filter((v) => !hostNames.includes(v.host));
  const vmItem = (v) => (
    <li key={v.id}>
      <a href={`#/vm/${v.name}`} aria-current={route.vm === v.name ? 'page' : undefined}
         data-vm={v.name} data-state={v.state}>
        <StateIcon state={v.state} /> {v.name}
      </a>
    </li>
  );
  return (
    <nav class="tree" aria-label="Hosts, VMs, pools and networks">
      <ul>
        {cluster && (
          <li><a href="#/cluster" data-nav="cluster" aria-current={route.page === 'cluster' ? 'page' : undefined}>Cluster</a></li>
        )}
        {hosts.map((h) => (
          <li key={h.name}>
            <a href={`#/host/${h.name}`} data-host={h.name} data-state={h.state || 'online'}
               aria-current={route.page === 'host' && route.name === h.name ? 'page' : undefined}>
              <StateIcon state={h.state || 'online'} /> {h.name}
            </a>
            <ul>{vms.filter((v) => v.host === h.name).map(vmItem)}</ul>
          </li>
        ))}
        {orphans.length > 0 && <li>VMs<ul>{orphans.map(vmItem)}</ul></li>}
        <li>
          Pools
          <ul>
            {pools.map((p) => (
              <li key={p.name}>
                <a href={`#/pool/${p.name}`}>
                  <StateIcon state={p.reachable === false ? 'offline' : 'active'} /> {p.name}
                </a>
              </li>
            ))}
          </ul>
        </li>
        <li>
          <a href="#/networks" data-nav="networks">Networks</a>
          <ul>
            {networks.map((n) => (
              <li key={n.name}>
                <a href={`#/network/${n.name}`} data-network={n.name}>
                  <StateIcon state={n.state || 'active'} /> {n.name}
                  {n.project && <span class="tag" title={`project ${n.project}`}> {n.project}</span>}
                </a>
              </li>
            ))}
          </ul>
        </li>
      </ul>
    </nav>
  );
}
