// main.jsx: the web UI's shell: login, then the tree (left), the page the
// hash route names (centre), the task log (bottom); everything is read from
// the REST API once and kept current by the event stream, without reloads
// (a user with roles on projects only has no event stream: polled, pollScoped).
// The hosts' records come as events too (kind host, applied as they are:
// hostFromEvent); a list is read again only when an event's document cannot
// be applied as it is, and never twice at once.
import { render } from 'preact';
import { useEffect, useState, useCallback, useRef } from 'preact/hooks';
import { api, whoami, logout, followEvents } from './api.js';
import { Login } from './login.jsx';
import { Tree, StateIcon } from './tree.jsx';
import { VmPage } from './vm-page.jsx';
import { TaskLog } from './tasks.jsx';
import { formatBytes } from './api.js';
import { lazyView } from './lazy.jsx';
import { pollWhileShown, projectOnly } from './poll-kit.js';
import { roleIn } from './project-kit.jsx';
import './style.css';

// Loaded when first shown: the admin pages and the create-VM wizard.
const Users = lazyView(() => import('./admin.jsx'), 'Users');
const Tokens = lazyView(() => import('./admin.jsx'), 'Tokens');
const Wizard = lazyView(() => import('./wizard.jsx'), 'Wizard');
const Projects = lazyView(() => import('./projects.jsx'), 'Projects');
const Schedules = lazyView(() => import('./schedules.jsx'), 'Schedules');
const PoolPage = lazyView(() => import('./pool-page.jsx'), 'PoolPage');
const NetworkPage = lazyView(() => import('./network-page.jsx'), 'NetworkPage');
const Networks = lazyView(() => import('./network-page.jsx'), 'Networks');
const HostPage = lazyView(() => import('./host-page.jsx'), 'HostPage');
const ClusterPage = lazyView(() => import('./cluster-page.jsx'), 'ClusterPage');

// A user with roles on projects only has no event stream: their VMs and
// networks are read again 5 s after the last read ended, the pools (a Ceph
// pool's usage is asked of Ceph for each read) every 12th time, and nothing
// while the tab is hidden (read at once when shown again; poll-kit.js). A
// failed read is retried by the next one, whose success takes its message
// away.
const POOLS_EVERY = 12;

function pollScoped(reload, setError) {
  let round = 0;
  return pollWhileShown(() => reload(round++ % POOLS_EVERY === 0 ? ['vms', 'pools', 'networks']
                                                                  : ['vms', 'networks'], 0, 0),
                        { setError });
}

// A host's list entry after its event (docs/events.md), of one of two
// documents: its live record (state, maintenance, load, whether it holds
// the manager role) over what the list said, who it is and whether it is
// this host staying as the list said; or its member document (no state:
// name, address, ratios and the maintenance flag, which an offline host
// keeps). Null when the list lacks it (a host that joined) or the document
// went (offline, or removed): the list is read again.
function hostFromEvent(hosts, ev) {
  const old = hosts.find((h) => h.id === ev.id);
  if (!old || ev.action === 'delete' || !ev.object) return null;
  const r = ev.object;
  if (r.state === undefined)
    return { ...old, name: r.name || old.name, address: r.address || old.address,
             mem_ratio: r.mem_ratio ?? old.mem_ratio, cpu_ratio: r.cpu_ratio ?? old.cpu_ratio,
             maintenance: Boolean(r.maintenance) };
  return { ...old, ...r, id: old.id, name: old.name, address: old.address, joined_at: old.joined_at,
           manager: typeof r.manager === 'boolean' ? r.manager : old.manager, local: old.local,
           maintenance: r.state === 'maintenance' || (r.state !== 'online' && Boolean(old.maintenance)) };
}

// The list with host applied: a host that took the manager role took it
// from the others (the old manager's record may say so only later, or never
// when its vireod died and its fence keeps the record).
const withHost = (hosts, host) => hosts.map((h) => (h.id === host.id ? host
  : host.manager && h.manager ? { ...h, manager: false } : h));

// A user with a role on some project (they read the projects page).
const hasGrants = (who) => Object.keys(who.grants || {}).length > 0;

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'vm' && parts[1]) return { page: 'vm', vm: parts[1], tab: parts[2] || 'summary' };
  if (['host', 'pool', 'network'].includes(parts[0]) && parts[1]) return { page: parts[0], name: parts[1] };
  if (parts[0] === 'create') return { page: 'create' };
  if (parts[0] === 'admin' && ['users', 'tokens', 'projects'].includes(parts[1])) return { page: 'admin', name: parts[1] };
  if (parts[0] === 'schedules') return { page: 'schedules' };
  if (parts[0] === 'networks') return { page: 'networks' };
  if (parts[0] === 'cluster') return { page: 'cluster' };
  return { page: 'overview' };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const on = () => setRoute(parseRoute());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

function Overview({ vms, hosts }) {
  const running = vms.filter((v) => v.state === 'running').length;
  return (
    <article>
      <h1>Overview</h1>
      <p>{hosts.length} host(s), {vms.length} VM(s), {running} running.</p>
      <table class="vm-table">
        <thead><tr><th>VM</th><th>State</th><th>Host</th><th>CPUs</th><th>Memory</th></tr></thead>
        <tbody>
          {vms.map((v) => (
            <tr key={v.id}>
              <td><a href={`#/vm/${v.name}`}>{v.name}</a></td>
              <td><StateIcon state={v.state} /> {v.state}</td>
              <td>{v.host}</td><td>{v.vcpus}</td><td>{formatBytes(v.memory_mib * 1048576)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </article>
  );
}

function Console({ who, onLogout }) {
  const route = useRoute();
  const [data, setData] = useState({ vms: [], hosts: [], pools: [], networks: [], images: [] });
  const [tasks, setTasks] = useState([]);
  const [error, setError] = useState(null);
  const [live, setLive] = useState(false);
  const hostsNow = useRef([]);
  hostsNow.current = data.hosts;
  // The lists being read, and those asked again meanwhile (read once the
  // read in flight ends: one read of a list at a time, however many events
  // or pages ask).
  const reading = useRef(new Set());
  const askedAgain = useRef(new Set());

  // A list that could not be fetched (vireod unreachable for a moment: a
  // connection cut, a TLS handshake lost on a loaded host) is asked again,
  // up to 6 times over about a minute, so the page never stays behind the
  // event that asked for it.
  // The poll of a project's user retries by itself (retries 0). True when read.
  const reload = useCallback(async (asked, attempt = 0, retries = 6) => {
    asked.filter((w) => reading.current.has(w)).forEach((w) => askedAgain.current.add(w));
    const what = asked.filter((w) => !reading.current.has(w));
    if (!what.length) return true;
    what.forEach((w) => reading.current.add(w));
    const done = () => {
      what.forEach((w) => reading.current.delete(w));
      const again = what.filter((w) => askedAgain.current.delete(w));
      if (again.length) reload(again, 0, retries);
    };
    try {
      const got = await Promise.all(what.map((w) => api('GET', `/v1/${w}`)));
      setData((d) => {
        const n = { ...d };
        what.forEach((w, i) => { n[w] = got[i][w] || []; });
        return n;
      });
      if (attempt > 0) setError(null);
      done();
      return true;
    } catch (e) {
      done();
      if (e.status === 401) onLogout();
      else setError(e.message);
      if (e.status === 0 && attempt < retries)
        setTimeout(() => reload(what, attempt + 1, retries), 1000 * 2 ** Math.min(attempt, 4));
      return false;
    }
  }, []);

  useEffect(() => {
    // A user with roles on projects only reads their projects' VMs, volumes
    // and networks and the pools (docs/projects.md), not the hosts, images,
    // task list or event stream: their lists are polled (pollScoped).
    if (projectOnly(who)) return pollScoped(reload, setError);
    reload(['vms', 'hosts', 'pools', 'networks', 'images']);
    api('GET', '/v1/tasks').then((t) => setTasks(t.tasks || []), () => {});
    // Changes arrive as events; a burst of them reloads a list once.
    const pending = new Set();
    let timer = null;
    const stop = followEvents((kind, ev) => {
      if (kind === 'operation') {
        if (!ev.object) return;
        setTasks((ts) => [ev.object, ...ts.filter((t) => t.id !== ev.object.id)]
          .sort((a, b) => (b.created_at || '').localeCompare(a.created_at || '')));
        // A delete's task end reloads the list too (vireod sends a VM's
        // 'vm' event once it left GET /v1/vms: this is a second chance for
        // an event lost while the stream reconnected).
        if (ev.object.kind !== 'delete' || ev.object.state !== 'succeeded') return;
      }
      if (kind === 'host') {
        const host = hostFromEvent(hostsNow.current, ev);
        if (host) {
          hostsNow.current = withHost(hostsNow.current, host);
          setData((d) => ({ ...d, hosts: withHost(d.hosts, host) }));
          // A read of the hosts out now may answer what was before this
          // record and replace it: read once more after it.
          if (reading.current.has('hosts')) askedAgain.current.add('hosts');
          return;
        }
      }
      pending.add({ vm: 'vms', operation: 'vms', network: 'networks', pool: 'pools', image: 'images',
                   host: 'hosts' }[kind]);
      if (!timer)
        timer = setTimeout(() => {
          timer = null;
          const what = [...pending];
          pending.clear();
          reload(what);
        }, 100);
    }, (up) => {
      setLive(up);
      if (up) reload(['vms', 'hosts']); // caught up after a reconnect
    });
    return () => {
      stop();
      clearTimeout(timer);
    };
  }, []);

  // A network's create or move ends before its project is written beside
  // it, after the network's own event: the page reads the list again.
  const reloadNetworks = () => reload(['networks']);

  let page;
  if (route.page === 'vm') {
    const vm = data.vms.find((v) => v.name === route.vm);
    // Each VM judged by the user's role on its project (and on the cluster).
    page = vm ? <VmPage vm={vm} networks={data.networks} pools={data.pools} hosts={data.hosts}
                        role={roleIn(who, vm.project || 'default')}
                        tab={route.tab}
                        tasks={tasks}
                        onError={setError} />
              : <p>No VM '{route.vm}' (yet).</p>;
  } else if (route.page === 'create') {
    page = <Wizard images={data.images} networks={data.networks} role={who.role} onError={setError} />;
  } else if (route.page === 'admin') {
    page = route.name === 'projects' && (who.role === 'admin' || hasGrants(who))
      ? <Projects who={who} onError={setError} />
      : who.role !== 'admin' ? <p class="note">The admin pages need the admin role (yours: {who.role}).</p>
      : route.name === 'users' ? <Users me={who.principal} onError={setError} /> : <Tokens onError={setError} />;
  } else if (route.page === 'schedules') {
    page = <Schedules role={who.role} vms={data.vms} tasks={tasks} onError={setError} />;
  } else if (route.page === 'networks') {
    page = <Networks networks={data.networks} who={who} onError={setError} onChanged={reloadNetworks} />;
  } else if (route.page === 'pool' || route.page === 'network') {
    const obj = data[route.page + 's'].find((o) => o.name === route.name);
    page = !obj ? <p>No {route.page} '{route.name}'.</p>
      : route.page === 'pool' ? <PoolPage pool={obj} who={who} tasks={tasks} onError={setError} />
      : <NetworkPage network={obj} vms={data.vms} who={who} onError={setError}
                                  onChanged={reloadNetworks} />;
  } else if (route.page === 'host') {
    const host = data.hosts.find((o) => o.name === route.name);
    page = host ? <HostPage host={host} vms={data.vms} who={who} tasks={tasks} onError={setError} />
                : <p>No host '{route.name}'.</p>;
  } else if (route.page === 'cluster') {
    page = <ClusterPage hosts={data.hosts} who={who} tasks={tasks} onError={setError}
                        reloadHosts={() => reload(['hosts'])} />;
  } else {
    page = <Overview vms={data.vms} hosts={data.hosts} />;
  }

  return (
    <div class="shell">
      <header class="top">
        <a href="#/" class="brand">vireo</a>
        <a href="#/create" class="button" data-action="create">Create VM</a>
        {who.role === 'admin' && (
          <nav class="admin-links" aria-label="Administration">
            <a href="#/admin/users" data-admin="users">Users</a>
            <a href="#/admin/tokens" data-admin="tokens">API tokens</a>
            <a href="#/admin/projects" data-admin="projects">Projects</a>
          </nav>
        )}
        {who.role !== 'admin' && hasGrants(who) && (
          <a href="#/admin/projects" data-nav="projects">Projects</a>
        )}
        {!['viewer', 'none'].includes(who.role) && <a href="#/schedules" data-nav="schedules">Schedules</a>}
        <span class={live ? 'live on' : 'live'} data-live={live ? '1' : '0'}>
          {live ? 'live' : projectOnly(who) ? 'read every 5 s' : 'reconnecting…'}
        </span>
        <span class="who" data-role={who.role}>{who.principal} ({who.role})</span>
        <button onClick={onLogout}>Log out</button>
      </header>
      <Tree hosts={data.hosts} vms={data.vms} pools={data.pools} networks={data.networks} route={route}
            cluster={!projectOnly(who)} />
      <main class="page">
        {error && (
          <div class="error banner" role="alert" data-error>
            {error} <button aria-label="Dismiss" onClick={() => setError(null)}>×</button>
          </div>
        )}
        {page}
      </main>
      <TaskLog tasks={tasks} />
    </div>
  );
}

function App() {
  const [who, setWho] = useState(undefined);
  const check = () => whoami().then(setWho, () => setWho(null));
  useEffect(() => { check(); }, []);
  if (who === undefined) return <p class="loading">Loading…</p>;
  if (!who) return <Login onLoggedIn={check} />;
  return <Console who={who} onLogout={() => logout().finally(() => setWho(null))} />;
}

render(<App />, document.getElementById('app'));
