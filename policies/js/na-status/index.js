// NA is the system of record for `status`. Of two different statuses, the merge keeps:
// 1. a terminal state (an Individual's `deceased`, an Organization's `closed`) over one that is
//    not, wherever it was written;
// 2. otherwise the one written in NA, whatever its clock says;
// 3. otherwise the last writer.
// One order of all status writes, so the merge stays commutative, associative and idempotent.
// Deletes follow the default rules: the rule steps aside when the merge keeps a tombstone, and
// for tenants configured `update-resurrects` (only the stamps' order is associative there).
// Every other field merges as the default policy does.
// Its limit: a status NA wrote before the versions forked still beats a later change from
// another region that had seen it (docs/per-field-causality.md).
//
// A port of `resolver-wasm/examples/na-status/src/lib.rs`: same structure, same answers.

import './bom-fix.js';
import * as merge from './default-merge.js';

export const resolver = {
  describe() {
    return { name: 'na-status-js', version: '1.1.0', contractVersion: merge.CONTRACT_VERSION };
  },

  resolve(ctx, local, remote) {
    const resolution = merge.resolve(ctx, local, remote);
    if (resolution.tag !== 'merged') return resolution;
    const merged = resolution.val;
    const l = merge.field(local, 'status');
    const r = merge.field(remote, 'status');
    if (l === undefined || r === undefined) return resolution;
    if (merged.tombstone !== undefined) return resolution; // deletes follow the default rules
    if (merge.parseConfig(ctx.config).deleteRule !== merge.DELETE_WINS) return resolution;
    // [terminal, written in NA] as a number: terminal counts for more.
    const rank = (f) =>
      (f.value.tag === 'json' && merge.isTerminal(local.resourceType, f.value.val) ? 2 : 0) +
      (f.stamp.region === 'na' ? 1 : 0);
    let side;
    if (rank(l) > rank(r)) side = 'local';
    else if (rank(l) < rank(r)) side = 'remote';
    else side = merge.lastWriter(l, r);
    merge.setField(merged, 'status', { tag: 'copy', val: side });
    return resolution;
  },
};
