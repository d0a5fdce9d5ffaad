// serial.jsx: the VM's serial console in xterm.js over a WebSocket
// (GET /v1/vms/ID/console with 'Upgrade: websocket'): what the guest
// printed so far first (console/log), then what it prints arrives in binary
// frames, and what is typed goes back as text frames.
import { useEffect, useRef, useState } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import { consoleSocket } from './api.js';

export function SerialConsole({ vm, canOperate }) {
  const el = useRef(null);
  const [status, setStatus] = useState('connecting');

  useEffect(() => {
    if (!canOperate || (vm.state !== 'running' && vm.state !== 'paused')) return undefined;
    const term = new Terminal({ convertEol: false, cursorBlink: true, rows: 30, cols: 100,
                                fontSize: 13, scrollback: 2000 });
    term.open(el.current);
    let ws = null;
    let closed = false;
    const decoder = new TextDecoder();
    const connect = () => {
      if (closed) return;
      ws = consoleSocket(vm.name);
      ws.onopen = () => {
        setStatus('connected');
        term.focus();
      };
      ws.onmessage = (ev) => term.write(typeof ev.data === 'string' ? ev.data
                                          : decoder.decode(ev.data, { stream: true }));
      ws.onclose = () => setStatus('closed');
      ws.onerror = () => setStatus('error');
    };
    fetch(`/v1/vms/${encodeURIComponent(vm.name)}/console/log`, { credentials: 'same-origin' })
      .then((r) => (r.ok ? r.text() : ''))
      .then((text) => term.write(text.replace(/\r?\n/g, '\r\n')), () => {})
      .finally(connect);
    const input = term.onData((d) => {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(d);
    });
    // For tests and assistive tools: the text the terminal holds.
    el.current.dataset.ready = '1';
    el.current.vireoText = () => {
      const b = term.buffer.active;
      const lines = [];
      for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
      return lines.join('\n');
    };
    return () => {
      closed = true;
      input.dispose();
      if (ws) ws.close();
      term.dispose();
    };
  }, [vm.name, vm.state === 'running' || vm.state === 'paused', canOperate]);

  if (!canOperate)
    return <p class="note">The serial console needs the operator role.</p>;
  if (vm.state !== 'running' && vm.state !== 'paused')
    return <p class="note">The VM is {vm.state}: start it to use its console.</p>;
  return (
    <section class="serial" aria-label="Serial console">
      <p class="status" data-console-status={status}>Console: {status}</p>
      <div ref={el} class="terminal" />
    </section>
  );
}
