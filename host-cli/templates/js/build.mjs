// Builds a policy into a component with componentize-js's Node API, from the pinned
// componentize-js in <node_modules> (installed by `host-cli policy build`).
// Usage: node build.mjs <node_modules> <entry.js> <wit-dir> <output.wasm>
//
// Every optional engine feature is disabled: the default build imports wasi:http (fetch), and
// a policy needs no console, randomness or clock. The component imports nothing, which is
// what the hosts accept.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, entry, wit, output] = process.argv.slice(2);
if (!modules || !entry || !wit || !output) {
  console.error('usage: node build.mjs <node_modules> <entry.js> <wit-dir> <output.wasm>');
  process.exit(2);
}
const pkgDir = join(modules, '@bytecodealliance', 'componentize-js');
const pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'));
const { componentize } = await import(pathToFileURL(join(pkgDir, pkg.exports.import)).href);
const { component } = await componentize({
  sourcePath: resolve(entry),
  witPath: resolve(wit),
  worldName: 'policy',
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await mkdir(dirname(resolve(output)), { recursive: true });
await writeFile(output, component);
