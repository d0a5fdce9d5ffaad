// vnc.jsx: the VM's graphical console: noVNC over the VNC stream's
// WebSocket (GET /v1/vms/ID/vnc, binary frames, the "binary" subprotocol;
// the session's cookie goes with it). Loaded when first shown (lazy.jsx):
// noVNC stays out of the first load. Keys typed on the screen go to the
// guest; Ctrl+Alt+Del has its own button.
import { useEffect, useRef, useState } from 'preact/hooks';
import RFB from '@novnc/novnc';
import { wsUrl } from './api.js';
import './pages.css';

export function GraphicalConsole({ vm, canOperate }) {
  const el = useRef(null);
  const rfbRef = useRef(null);
  const [status, setStatus] = useState('connecting');
  const [scale, setScale] = useState(false);
  const running = vm.state === 'running' || vm.state === 'paused';
  const hasDisplay = vm.display && vm.display !== 'none';

  useEffect(() => {
    if (!canOperate || !running || !hasDisplay) return undefined;
    setStatus('connecting');
    const rfb = new RFB(el.current, wsUrl(vm.name, 'vnc'), { wsProtocols: ['binary'], shared: true });
    rfb.scaleViewport = scale;
    rfb.background = '#000';
    rfb.addEventListener('connect', () => {
      setStatus('connected');
      rfb.focus();
    });
    rfb.addEventListener('disconnect', (e) => setStatus(e.detail.clean ? 'closed' : 'error'));
    rfb.addEventListener('securityfailure', (e) => setStatus(`refused: ${e.detail.reason || 'security'}`));
    rfbRef.current = rfb;
    return () => {
      rfbRef.current = null;
      rfb.disconnect();
    };
  }, [vm.name, running, hasDisplay, canOperate]);

  useEffect(() => {
    if (rfbRef.current) rfbRef.current.scaleViewport = scale;
  }, [scale]);

  if (!canOperate)
    return <p class="note">The graphical console needs the operator role.</p>;
  if (!hasDisplay)
    return <p class="note">The VM has no display: give it one while it is stopped
      (<code>vireo vm set {vm.name} --display vga</code>).</p>;
  if (!running)
    return <p class="note">The VM is {vm.state}: start it to see its screen.</p>;
  return (
    <section class="vnc" aria-label="Graphical console">
      <p class="status">
        <span data-vnc-status={status}>Screen: {status}</span>{' '}
        <button data-action="ctrl-alt-del" disabled={status !== 'connected'}
                onClick={() => rfbRef.current && rfbRef.current.sendCtrlAltDel()}>Ctrl+Alt+Del</button>{' '}
        <label><input type="checkbox" checked={scale} onChange={(e) => setScale(e.target.checked)} />
          {' '}Fit to the page</label>
      </p>
      <div ref={el} class="screen" data-vnc-screen />
    </section>
  );
}
