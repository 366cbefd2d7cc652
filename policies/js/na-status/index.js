// NA is the system of record for `status`: when the two versions disagree on it, the one
// written in NA wins, whatever its clock says. Everything else merges as the default policy
// does (per-field last writer, arrays element-wise, deletes as tombstones).
//
// A port of `resolver-wasm/examples/na-status/src/lib.rs`: same structure, same answers.

import './bom-fix.js';
import * as merge from './default-merge.js';

export const resolver = {
  describe() {
    return { name: 'na-status-js', version: '1.0.0', contractVersion: merge.CONTRACT_VERSION };
  },

  resolve(ctx, local, remote) {
    const resolution = merge.resolve(ctx, local, remote);
    if (resolution.tag !== 'merged') return resolution;
    const merged = resolution.val;
    const l = merge.field(local, 'status');
    const r = merge.field(remote, 'status');
    if (l === undefined || r === undefined) return resolution;
    if (merged.tombstone !== undefined) return resolution; // deletes follow the default rules
    const lNa = l.stamp.region === 'na';
    const rNa = r.stamp.region === 'na';
    let side;
    if (lNa && !rNa) side = 'local';
    else if (rNa && !lNa) side = 'remote';
    else side = merge.lastWriter(l, r);
    merge.setField(merged, 'status', { tag: 'copy', val: side });
    return resolution;
  },
};
