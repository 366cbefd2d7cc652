// Builds one JavaScript policy into a component with componentize-js's Node API.
// Usage: node build.mjs <policy-dir> <output.wasm>
//
// The policy's entry point is <policy-dir>/index.js, which exports `resolver`. By default it
// targets the world `policy` of the repository's wit/. A policy that needs more imports (the
// hostile examples) has its own <policy-dir>/world.wit: it is built against that world, with
// the contract and the WASI packages that jco ships (pinned by package-lock.json) as deps.
//
// The `jco componentize` CLI fails here ("failed to get path metadata"); the Node API works.
// Every optional engine feature is disabled: the default build imports wasi:http (fetch), and a
// policy needs no console, randomness or clock. The result imports nothing but what the
// policy's world names.
import { componentize } from '@bytecodealliance/componentize-js';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [dir, output] = process.argv.slice(2);
if (!dir || !output) {
  console.error('usage: node build.mjs <policy-dir> <output.wasm>');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const WASI_VERSION = '0.2.12';

const exists = (path) => stat(path).then(() => true, () => false);

// A WIT folder for a policy with its own world: world.wit, the contract and WASI as deps.
async function witFolder(world) {
  const folder = await mkdtemp(join(tmpdir(), 'policy-wit-'));
  await cp(world, join(folder, 'world.wit'));
  await mkdir(join(folder, 'deps', 'tmf632-conflict'), { recursive: true });
  await cp(join(root, 'wit', 'policy.wit'), join(folder, 'deps', 'tmf632-conflict', 'policy.wit'));
  const jco = join(here, 'node_modules', '@bytecodealliance', 'jco');
  await cp(join(jco, 'lib', 'wit', 'builtin', WASI_VERSION), join(folder, 'deps'), {
    recursive: true,
  });
  return folder;
}

// The world of the repository's wit/ that a policy's `world` file names (`writes-policy` for a
// policy that reads the writes, contract revision 1.3), otherwise `policy`.
async function worldOf(dir) {
  const file = resolve(dir, 'world');
  return (await exists(file)) ? (await readFile(file, 'utf8')).trim() : 'policy';
}

const world = resolve(dir, 'world.wit');
const ownWorld = await exists(world);
const witPath = ownWorld ? await witFolder(world) : join(root, 'wit');
try {
  const { component } = await componentize({
    sourcePath: resolve(dir, 'index.js'),
    witPath,
    worldName: ownWorld ? 'policy' : await worldOf(dir),
    disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
  });
  await mkdir(dirname(resolve(output)), { recursive: true });
  await writeFile(output, component);
} finally {
  if (ownWorld) await rm(witPath, { recursive: true, force: true });
}
