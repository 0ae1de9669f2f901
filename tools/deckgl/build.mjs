// Build the map's deck.gl bundle (entry.mjs) into cim_service/static/build/deck.min.js: one minified IIFE,
// deterministic for the pinned package-lock.json (no timestamps, no source paths). `node build.mjs --out FILE`
// writes it elsewhere (the test that checks the served bundle is this build).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const at = process.argv.indexOf('--out');
const out = at > 0 ? process.argv[at + 1]
  : fileURLToPath(new URL('../../cim_service/static/build/deck.min.js', import.meta.url));
await build({
  entryPoints: [fileURLToPath(new URL('entry.mjs', import.meta.url))],
  outfile: out,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020'],
  minify: true,
  legalComments: 'eof',
  metafile: false,
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});
