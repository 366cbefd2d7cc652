"""NA is the system of record for `status`. Of two different statuses, the merge keeps:
1. a terminal state (an Individual's `deceased`, an Organization's `closed`) over one that is
   not, wherever it was written;
2. otherwise the one written in NA, whatever its clock says;
3. otherwise the last writer.
One order of all status writes, so the merge stays commutative, associative and idempotent.
Deletes follow the default rules: the rule steps aside when the merge keeps a tombstone, and for
tenants configured `update-resurrects` (only the stamps' order is associative there). Every other
field merges as the default policy does.
Its limit: a status NA wrote before the versions forked still beats a later change from another
region that had seen it (docs/per-field-causality.md).

A port of `resolver-wasm/examples/na-status/src/lib.rs`: same structure, same answers.
"""

import default_merge as merge
from wit_world import exports
from wit_world.exports.resolver import (
    Description,
    FieldValue_Json,
    MergedValue_Copy,
    Resolution_Merged,
    Side,
)


class Resolver(exports.Resolver):
    def describe(self):
        return Description("na-status-python", "1.1.0", merge.CONTRACT_VERSION)

    def resolve(self, ctx, local, remote):
        resolution = merge.resolve(ctx, local, remote)
        if not isinstance(resolution, Resolution_Merged):
            return resolution
        merged = resolution.value
        l, r = merge.field(local, "status"), merge.field(remote, "status")
        if l is None or r is None:
            return resolution
        delete_rule, _ = merge.parse_config(ctx.config)
        if merged.tombstone is not None or delete_rule != merge.DELETE_WINS:
            return resolution  # deletes follow the default rules
        def rank(f):
            terminal = isinstance(f.value, FieldValue_Json) and merge.is_terminal(
                local.resource_type, f.value.value
            )
            return (terminal, f.stamp.region == "na")

        if rank(l) > rank(r):
            side = Side.LOCAL
        elif rank(l) < rank(r):
            side = Side.REMOTE
        else:
            side = merge.last_writer(l, r)
        merge.set_field(merged, "status", MergedValue_Copy(side))
        return resolution
