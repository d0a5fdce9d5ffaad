// vite.config.js: the web UI is built into dist/ and served by vireod at /ui/.
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

export default defineConfig({
  base: '/ui/',
  plugins: [preact()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // es2022: noVNC (the graphical console's chunk) uses a top-level await.
    target: 'es2022',
    chunkSizeWarningLimit: 800,
  },
});
