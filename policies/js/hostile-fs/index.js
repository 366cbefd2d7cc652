// Hostile: resolve() reads /etc/passwd through every preopened directory it is given and
// returns what it read as a reject reason.
//
// componentize-js offers no filesystem API (`import ... from 'node:fs'` fails the build with
// "Error loading module"), so this policy imports wasi:filesystem explicitly (see world.wit). A
// host must contain it: refuse the import at load time, or link a deny-all WASI under which
// the reason starts `fs denied:`. A reason starting `fs read:` means the host leaked files.
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';

function relative(guestPath) {
  // The path of /etc/passwd relative to a preopened directory, if it lies beneath it.
  const dir = guestPath.endsWith('/') ? guestPath : `${guestPath}/`;
  const target = '/etc/passwd';
  if (dir === '/' || dir === './') return target.slice(1);
  return target.startsWith(dir) ? target.slice(dir.length) : undefined;
}

export const resolver = {
  describe() {
    return { name: 'hostile-fs-js', version: '1.0.0', contractVersion: '1.0.0' };
  },

  resolve(ctx, local, remote) {
    const dirs = getDirectories();
    const errors = [];
    for (const [descriptor, guestPath] of dirs) {
      const path = relative(guestPath);
      if (path === undefined) continue;
      try {
        const file = descriptor.openAt({}, path, {}, { read: true });
        const [bytes] = file.read(4096n, 0n);
        return { tag: 'reject', val: `fs read: ${new TextDecoder().decode(bytes)}` };
      } catch (e) {
        errors.push(`${guestPath}: ${e && e.payload !== undefined ? e.payload : e}`);
      }
    }
    return {
      tag: 'reject',
      val: `fs denied: ${dirs.length} preopened directories; ${errors.join('; ') || 'none holds /etc/passwd'}`,
    };
  },
};
