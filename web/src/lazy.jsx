// lazy.jsx: a view whose code is loaded when first shown (vite splits it
// into its own chunk): the graphs (uPlot) and the console (xterm.js) stay
// out of the first load.
import { useEffect, useState } from 'preact/hooks';

export function lazyView(load, name) {
  let loaded = null;
  return function LazyView(props) {
    const [View, setView] = useState(() => loaded);
    const [error, setError] = useState(null);
    useEffect(() => {
      if (!View)
        load().then((m) => {
          loaded = m[name];
          setView(() => loaded);
        }, (e) => setError(e.message));
    }, []);
    if (error) return <p class="error" role="alert">Cannot load this view: {error}</p>;
    return View ? <View {...props} /> : <p class="loading">Loading…</p>;
  };
}
