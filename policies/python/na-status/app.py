"""NA is the system of record for `status`: NA's status wins when NA changed it concurrently.
Of two different statuses, the merge keeps the greater by:
1. a terminal state (an Individual's `deceased`, an Organization's `closed`: the end of the
   lifecycle) over one that is not, wherever it was written — NA's authority does not bring a
   party back from its end;
2. then how many of NA's writes the status's write had seen, counting itself when NA made it
   (`merge.seen`, contract revision 1.3). NA's concurrent change beats a write made without
   having seen it; a write made after seeing NA's latest status counts as many and, stamped
   later, wins by
3. the last writer.
So a status NA wrote before the two versions forked does not beat a later change from another
region that had seen it.

Where either status's write is unknown (a party stored before writes were recorded), step 2 is
the rule before revision 1.3: the status written in NA wins. Deletes follow the default rules:
the rule steps aside when the merge keeps a tombstone, and for tenants configured
`update-resurrects`. Every other field merges as the default policy does.

Built for the world `writes-policy` (the file `world` beside this one): the hosts call
`WritesResolver.resolve` with each version's writes; `Resolver.resolve` (no writes) is the rule
with every write unknown.

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
from wit_world.exports.writes_resolver import Writes

NA = "na"
# Revision 1.3: the host sends each version's writes (docs/per-field-causality.md).
CONTRACT_VERSION = "1.3.0"


def describe():
    return Description("na-status-python", "1.2.0", CONTRACT_VERSION)


def resolve_with_writes(ctx, local, local_writes, remote, remote_writes):
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
    seen = (
        merge.seen(local, local_writes, "status", NA),
        merge.seen(remote, remote_writes, "status", NA),
    )
    # Both writes known: NA's writes seen; otherwise whether NA wrote it.
    known = seen[0] is not None and seen[1] is not None

    def rank(party, f, n):
        terminal = isinstance(f.value, FieldValue_Json) and merge.is_terminal(
            party.resource_type, f.value.value
        )
        authority = n if known else int(f.stamp.region == NA)
        return (terminal, authority)

    lr, rr = rank(local, l, seen[0]), rank(remote, r, seen[1])
    if lr > rr:
        side = Side.LOCAL
    elif lr < rr:
        side = Side.REMOTE
    else:
        side = merge.last_writer(l, r)
    merge.set_field(merged, "status", MergedValue_Copy(side))
    return resolution


class Resolver(exports.Resolver):
    def describe(self):
        return describe()

    def resolve(self, ctx, local, remote):
        none = Writes([], None, [])
        return resolve_with_writes(ctx, local, none, remote, none)


class WritesResolver(exports.WritesResolver):
    def resolve(self, ctx, local, local_writes, remote, remote_writes):
        return resolve_with_writes(ctx, local, local_writes, remote, remote_writes)
