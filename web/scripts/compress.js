// compress.js: writes FILE.gz beside every text file of dist/ (vireod sends
// it to browsers that accept gzip: src/api/web-files.c).
import { gzipSync } from 'node:zlib';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const TEXT = /\.(html|js|css|svg|json|txt)$/;

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (TEXT.test(name)) writeFileSync(path + '.gz', gzipSync(readFileSync(path), { level: 9 }));
  }
}

walk(new URL('../dist', import.meta.url).pathname);
