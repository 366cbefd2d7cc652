"""{{name}}: a conflict-resolution policy for TMF632 parties. It starts as the default merge
(per-field last writer by hybrid logical clock, arrays element-wise, `status` by lifecycle,
deletes as tombstones); change `resolve` to add your rules, as policies/python/na-status does.

`default_merge.py` is the default merge in Python (a copy of the repository's, which keeps it
in step with the Rust one); the types it uses (`MergedElements`, `EntryRef`,
`Relation.LOCAL_DOMINATES`, ...) are generated from the contract (wit/policy.wit) into
`stubs/wit_world/` for your editor; componentize-py generates the same module at build time.
"""

import default_merge as merge
from wit_world import exports
from wit_world.exports.resolver import Description


class Resolver(exports.Resolver):
    def describe(self):
        return Description("{{name}}", "0.1.0", merge.CONTRACT_VERSION)

    def resolve(self, ctx, local, remote):
        return merge.resolve(ctx, local, remote)
