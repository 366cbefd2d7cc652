"""Hostile: resolve() reads /etc/passwd and returns what it read as a reject reason.

A host must contain it: with no preopened directory the open fails, and the reason says
`fs denied: ...`; a reason starting `fs read: ` means the host leaked its filesystem.
"""

from wit_world import exports
from wit_world.exports.resolver import Description, Resolution_Reject


class Resolver(exports.Resolver):
    def describe(self):
        return Description("hostile-fs-python", "1.0.0", "1.0.0")

    def resolve(self, ctx, local, remote):
        try:
            with open("/etc/passwd") as f:
                return Resolution_Reject("fs read: " + f.read(4096))
        except OSError as e:
            return Resolution_Reject(f"fs denied: {e!r}")
