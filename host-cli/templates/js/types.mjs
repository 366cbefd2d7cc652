// Writes the contract's types as TypeScript declarations (what componentize-js passes a
// policy), with the type generator of the pinned jco in <node_modules>. The WIT is given as
// text: the generator's own file access fails in this build of jco (as its CLI does).
// Usage: node types.mjs <node_modules> <policy.wit> <out-dir>
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, wit, out] = process.argv.slice(2);
if (!modules || !wit || !out) {
  console.error('usage: node types.mjs <node_modules> <policy.wit> <out-dir>');
  process.exit(2);
}
const bindgen = await import(
  pathToFileURL(join(modules, '@bytecodealliance/jco-transpile/vendor/js-component-bindgen-component.js')).href
);
await bindgen.$init;
const files = bindgen.generateTypes('policy', {
  wit: { tag: 'source', val: await readFile(wit, 'utf8') },
  world: 'policy',
  guest: true,
  tlaCompat: false,
  features: { tag: 'list', val: [] },
  flagsAsBigint: false,
  variantsInlineCases: false,
  useNamespaceObjects: false,
  enumValuesScreamingSnakeCase: false,
});
for (const [name, bytes] of files) {
  const path = join(out, name);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
}
