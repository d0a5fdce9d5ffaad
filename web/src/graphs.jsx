// graphs.jsx: a VM's or a host's CPU, memory, disk and network over 1 h or
// 1 day (GET /v1/vms/ID/metrics?range=... or /v1/hosts/NAME/metrics),
// drawn with uPlot, refreshed every sampling interval while shown: not
// while the browser's tab is hidden, once at once when it is shown again,
// never two reads at once (poll-kit.js).
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { api, formatBytes } from './api.js';
import { pollWhileShown } from './poll-kit.js';

const CHARTS = [
  { id: 'cpu', title: 'CPU (cores busy)', series: [['cpu', 'CPU']], fmt: (v) => v.toFixed(2) },
  { id: 'memory', title: 'Memory', series: [['memory_configured', 'configured'], ['memory_rss', 'used by QEMU']], fmt: formatBytes },
  { id: 'disk', title: 'Disk (per second)', series: [['disk_read', 'read'], ['disk_write', 'write']], fmt: (v) => formatBytes(v) + '/s' },
  { id: 'network', title: 'Network (per second)', series: [['net_rx', 'received'], ['net_tx', 'sent']], fmt: (v) => formatBytes(v) + '/s' },
];
// A host's CPU is the ratio of all its CPUs busy, its memory used of total.
const HOST_CHARTS = [
  { id: 'cpu', title: 'CPU (share of all busy)', series: [['cpu', 'CPU']], fmt: (v) => `${Math.round(v * 100)}%` },
  { id: 'memory', title: 'Memory', series: [['memory_total', 'total'], ['memory_used', 'used']], fmt: formatBytes },
  ...CHARTS.slice(2),
];
const COLORS = ['#2a7ab0', '#d9822b'];

function Chart({ chart, history }) {
  const el = useRef(null);
  const plot = useRef(null);
  const data = [history.timestamps, ...chart.series.map(([key]) =>
    (history.series[key] ? history.series[key].values : history.timestamps.map(() => null)))];
  const points = data.slice(1).reduce((n, vals) => n + vals.filter((v) => v !== null).length, 0);

  useEffect(() => {
    const opts = {
      width: Math.max(280, (el.current.clientWidth || 400) - 8),
      height: 160,
      series: [{}, ...chart.series.map(([, label], i) => ({
        label, stroke: COLORS[i], width: 1.5, points: { show: history.timestamps.length < 3 },
        value: (u, v) => (v === null || v === undefined ? '–' : chart.fmt(v)),
      }))],
      axes: [{}, { values: (u, vals) => vals.map((v) => chart.fmt(v)), size: 70 }],
    };
    plot.current = new uPlot(opts, data, el.current);
    return () => plot.current.destroy();
  }, [chart.id]);

  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [history]);

  return (
    <figure class="chart" data-chart={chart.id} data-points={points}>
      <figcaption>{chart.title}</figcaption>
      <div ref={el} />
    </figure>
  );
}

export function Graphs({ vm, host }) {
  const path = vm ? `/v1/vms/${encodeURIComponent(vm.name)}/metrics`
                  : `/v1/hosts/${encodeURIComponent(host.name)}/metrics`;
  const charts = vm ? CHARTS : HOST_CHARTS;
  const [range, setRange] = useState('1h');
  const [history, setHistory] = useState(null);
  const [error, setError] = useState(null);

  useEffect(() => {
    let stop = false;
    let wait = 10000; // after a failed read, and until the first says its interval
    async function load() {
      try {
        const h = await api('GET', `${path}?range=${range}`);
        if (stop) return true;
        setHistory(h);
        setError(null);
        wait = Math.max(1000, h.interval_ms || 10000);
        return true;
      } catch (e) {
        if (!stop) setError(e.message);
        wait = 10000;
        return false;
      }
    }
    const end = pollWhileShown(load, { ms: () => wait });
    return () => {
      stop = true;
      end();
    };
  }, [path, range]);

  return (
    <section class="graphs" aria-label="Graphs">
      <div role="radiogroup" aria-label="Range" class="range">
        {['1h', '1d'].map((r) => (
          <label key={r}>
            <input type="radio" name="range" value={r} checked={range === r}
                   onChange={() => setRange(r)} /> {r === '1h' ? '1 hour' : '1 day'}
          </label>
        ))}
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      {history && (
        <div class="charts">
          {charts.map((c) => <Chart key={c.id + range} chart={c} history={history} />)}
        </div>
      )}
    </section>
  );
}
