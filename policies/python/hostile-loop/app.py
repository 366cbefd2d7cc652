"""Hostile: resolve() never returns. A host must stop it (deadline, epochs or fuel)."""

from wit_world import exports
from wit_world.exports.resolver import Description


class Resolver(exports.Resolver):
    def describe(self):
        return Description("hostile-loop-python", "1.0.0", "1.0.0")

    def resolve(self, ctx, local, remote):
        n = 0
        while True:
            n += 1
