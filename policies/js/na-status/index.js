// NA is the system of record for `status`: NA's status wins when NA changed it concurrently.
// Of two different statuses, the merge keeps the greater by:
// 1. a terminal state (an Individual's `deceased`, an Organization's `closed`: the end of the
//    lifecycle) over one that is not, wherever it was written — NA's authority does not bring a
//    party back from its end;
// 2. then how many of NA's writes the status's write had seen, counting itself when NA made it
//    (`merge.seen`, contract revision 1.3). NA's concurrent change beats a write made without
//    having seen it; a write made after seeing NA's latest status counts as many and, stamped
//    later, wins by
// 3. the last writer.
// So a status NA wrote before the two versions forked does not beat a later change from another
// region that had seen it.
//
// Where either status's write is unknown (a party stored before writes were recorded), step 2 is
// the rule before revision 1.3: the status written in NA wins. Deletes follow the default rules:
// the rule steps aside when the merge keeps a tombstone, and for tenants configured
// `update-resurrects`. Every other field merges as the default policy does.
//
// Built for the world `writes-policy` (the file `world` beside this one): the hosts call
// `writesResolver.resolve` with each version's writes; `resolver.resolve` (no writes) is the rule
// with every write unknown.
//
// A port of `resolver-wasm/examples/na-status/src/lib.rs`: same structure, same answers.

import './bom-fix.js';
import * as merge from './default-merge.js';

const NA = 'na';
// Revision 1.3: the host sends each version's writes (docs/per-field-causality.md).
const CONTRACT_VERSION = '1.3.0';

function resolveWithWrites(ctx, local, localWrites, remote, remoteWrites) {
  const resolution = merge.resolve(ctx, local, remote);
  if (resolution.tag !== 'merged') return resolution;
  const merged = resolution.val;
  const l = merge.field(local, 'status');
  const r = merge.field(remote, 'status');
  if (l === undefined || r === undefined) return resolution;
  if (merged.tombstone !== undefined) return resolution; // deletes follow the default rules
  if (merge.parseConfig(ctx.config).deleteRule !== merge.DELETE_WINS) return resolution;
  const ls = merge.seen(local, localWrites, 'status', NA);
  const rs = merge.seen(remote, remoteWrites, 'status', NA);
  // Both writes known: NA's writes seen; otherwise whether NA wrote it.
  const known = ls !== undefined && rs !== undefined;
  // [terminal, authority], compared in that order.
  const rank = (party, f, n) => [
    f.value.tag === 'json' && merge.isTerminal(party.resourceType, f.value.val) ? 1 : 0,
    known ? BigInt(n) : f.stamp.region === NA ? 1n : 0n,
  ];
  const [lt, la] = rank(local, l, ls);
  const [rt, ra] = rank(remote, r, rs);
  let side;
  if (lt !== rt) side = lt > rt ? 'local' : 'remote';
  else if (la !== ra) side = la > ra ? 'local' : 'remote';
  else side = merge.lastWriter(l, r);
  merge.setField(merged, 'status', { tag: 'copy', val: side });
  return resolution;
}

export const resolver = {
  describe() {
    return { name: 'na-status-js', version: '1.2.0', contractVersion: CONTRACT_VERSION };
  },

  resolve(ctx, local, remote) {
    return resolveWithWrites(ctx, local, merge.NO_WRITES, remote, merge.NO_WRITES);
  },
};

export const writesResolver = {
  resolve(ctx, local, localWrites, remote, remoteWrites) {
    return resolveWithWrites(ctx, local, localWrites, remote, remoteWrites);
  },
};
