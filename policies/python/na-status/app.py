"""NA is the system of record for `status`: when the two versions disagree on it, the one
written in NA wins, whatever its clock says. Everything else merges as the default policy
does (per-field last writer, arrays element-wise, deletes as tombstones).

A port of `resolver-wasm/examples/na-status/src/lib.rs`: same structure, same answers.
"""

import default_merge as merge
from wit_world import exports
from wit_world.exports.resolver import (
    Description,
    MergedValue_Copy,
    Resolution_Merged,
    Side,
)


class Resolver(exports.Resolver):
    def describe(self):
        return Description("na-status-python", "1.0.0", merge.CONTRACT_VERSION)

    def resolve(self, ctx, local, remote):
        resolution = merge.resolve(ctx, local, remote)
        if not isinstance(resolution, Resolution_Merged):
            return resolution
        merged = resolution.value
        l, r = merge.field(local, "status"), merge.field(remote, "status")
        if l is None or r is None:
            return resolution
        if merged.tombstone is not None:
            return resolution  # deletes follow the default rules
        l_na, r_na = l.stamp.region == "na", r.stamp.region == "na"
        if l_na and not r_na:
            side = Side.LOCAL
        elif r_na and not l_na:
            side = Side.REMOTE
        else:
            side = merge.last_writer(l, r)
        merge.set_field(merged, "status", MergedValue_Copy(side))
        return resolution
