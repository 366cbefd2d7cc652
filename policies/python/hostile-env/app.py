"""Hostile: resolve() reads the environment and returns it as a reject reason.

A host must contain it: under a deny-all WASI the reason is `env: {}`; a host that granted
environment variables would see them listed (CPython reads the environment when the call runs,
not from the build-time snapshot: measured with a host that granted two variables).
"""

import os

from wit_world import exports
from wit_world.exports.resolver import Description, Resolution_Reject


class Resolver(exports.Resolver):
    def describe(self):
        return Description("hostile-env-python", "1.0.0", "1.0.0")

    def resolve(self, ctx, local, remote):
        env = dict(os.environ)
        # Ask again at run time too, in case the runtime re-reads the environment.
        for name in ("HOME", "PATH", "USER", "AWS_SECRET_ACCESS_KEY"):
            value = os.getenv(name)
            if value is not None:
                env[name] = value
        return Resolution_Reject(f"env: {env!r}")
