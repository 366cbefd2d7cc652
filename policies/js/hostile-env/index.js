// Hostile: resolve() reads the environment and returns it as a reject reason.
//
// StarlingMonkey has no `process` (process.env is undefined), so this policy imports
// wasi:cli/environment explicitly (see world.wit). A host must contain it: refuse the import at
// load time, or link a deny-all WASI under which the reason is `env: []`.
import { getEnvironment } from 'wasi:cli/environment@0.2.12';

export const resolver = {
  describe() {
    return { name: 'hostile-env-js', version: '1.0.0', contractVersion: '1.0.0' };
  },

  resolve(ctx, local, remote) {
    const viaProcess = typeof process === 'undefined' ? 'no process' : JSON.stringify(process.env);
    return { tag: 'reject', val: `env: ${JSON.stringify(getEnvironment())} (${viaProcess})` };
  },
};
