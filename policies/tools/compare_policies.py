"""Runs policy components side by side in wasmtime (the Python embedding) and reports where they
decide differently: on generated conflicts and on samples/conflicts.jsonl. A development check
for the Python and JavaScript ports of a Rust policy; not part of the hosts.

    python3 -m venv /tmp/wt && /tmp/wt/bin/pip install wasmtime==50.0.1
    /tmp/wt/bin/python policies/tools/compare_policies.py --cases 3000 \
        <rust na-status component> target/foreign-policies/python-na-status.wasm \
        target/foreign-policies/js-na-status.wasm

The first component is the reference. WASI is linked deny-all (no environment, arguments,
preopened directories or stdio) for the components that import it. Rejections whose reason is a
JSON parser's message ("policy configuration is not JSON: ...") count as equal: each language's
parser words its errors differently. With --hostile, calls each component once on an empty
conflict under a 200 ms epoch deadline and prints the outcome.
"""

import argparse
import copy
import hashlib
import json
import os
import random
import sys
import tempfile
import threading
import time

import wasmtime
from wasmtime import component as wc

IFACE = "tmf632:conflict/resolver@1.0.0"
CACHE = os.path.join(tempfile.gettempdir(), "compare-policies-cache")


def rec(**members):
    r = wc.Record()
    for k, v in members.items():
        setattr(r, k.replace("_", "-"), v)
    return r


def deep_copy(v):
    if isinstance(v, wc.Record):
        return rec(**{k.replace("-", "_"): deep_copy(x) for k, x in vars(v).items()})
    if isinstance(v, list):
        return [deep_copy(x) for x in v]
    return v


def plain(v):
    if isinstance(v, wc.Variant):
        return {v.tag: plain(v.payload)} if v.payload is not None else v.tag
    if isinstance(v, wc.Record):
        return {k: plain(x) for k, x in vars(v).items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


class Policy:
    def __init__(self, path, deadline_ms=None):
        config = wasmtime.Config()
        config.epoch_interruption = deadline_ms is not None
        self.engine = wasmtime.Engine(config)
        self.deadline_ms = deadline_ms
        data = open(path, "rb").read()
        key = hashlib.sha256(data + bytes([deadline_ms is not None])).hexdigest()[:24]
        cached = os.path.join(CACHE, key + ".cwasm")
        if os.path.exists(cached):
            self.component = wc.Component.deserialize_file(self.engine, cached)
        else:
            self.component = wc.Component(self.engine, data)
            os.makedirs(CACHE, exist_ok=True)
            with open(cached, "wb") as f:
                f.write(self.component.serialize())
        self.name = os.path.basename(path)
        self.instantiate()

    def instantiate(self):
        self.store = wasmtime.Store(self.engine)
        if self.deadline_ms is not None:
            self.store.set_epoch_deadline(1)
        linker = wc.Linker(self.engine)
        linker.add_wasip2()
        self.store.set_wasi(wasmtime.WasiConfig())  # deny-all
        instance = linker.instantiate(self.store, self.component)
        iface = instance.get_export_index(self.store, IFACE)
        func = lambda n: instance.get_func(
            self.store, instance.get_export_index(self.store, n, iface)
        )
        self.describe_fn, self.resolve_fn = func("describe"), func("resolve")

    def call(self, fn, *args):
        timer = None
        if self.deadline_ms is not None:
            timer = threading.Timer(self.deadline_ms / 1000, self.engine.increment_epoch)
            timer.start()
        try:
            out = fn(self.store, *args)
            fn.post_return(self.store)
            return plain(out)
        except Exception as e:  # a trap: the instance is unusable afterwards
            self.instantiate()
            return {"trap": str(e).splitlines()[0]}
        finally:
            if timer:
                timer.cancel()

    def describe(self):
        return self.call(self.describe_fn)

    def resolve(self, ctx, local, remote):
        return self.call(self.resolve_fn, ctx, local, remote)


# --- generated conflicts: small value sets, so that ties, shared elements and tombstones occur;
# non-ASCII names and regions check the string order (UTF-8 bytes, as Rust compares).

REGIONS = ["apac", "eu", "na", "\ue000r", "\U00010000r"]
FIELDS = ["@type", "birthDate", "contactMedium", "familyName", "givenName",
          "partyCharacteristic", "status", "\ue000f", "\U00010000f"]
STATUS = ['"initialized"', '"validated"', '"deceased"', '"deceaded"', '"closed"', '"other"',
          ' "validated" ', '\u00a0"validated"', '\ufeff"validated"', '\x1c"closed"',
          '""validated""', '"\U00010000"', '"\ue000"']
SCALARS = ['"Jane"', '"Janet"', "1", '{"a":1}', '"\U00010000"', '"\ue000"', "null"]
KEYS = ["c:abc", "id:1", "id:2", "\ue000k", "\U00010000k"]
CONFIGS = ["{}", "", " {} ", '{"deleteRule":"update-resurrects"}', '{"deleteRule":"delete-wins"}',
           '{"deleteRule":1}', "[]", "x", '{"zz":1,"deleteRule":"bad"}', '{"zz":1}',
           '\u00a0{"deleteRule":"update-resurrects"}\u3000', "\ufeff{}",
           '{"deleteRule":"delete-wins","deleteRule":"update-resurrects"}',
           '{"deleteRule":"update-resurrects"}\x1c', '{"deleteRule":NaN}',
           '{"deleteRule":{"b":1,"a":[1,2]}}']


def gen_hlc(r):
    return rec(wall_ms=r.choice([1, 2, 3, 2**63 + 5]), logical=r.choice([0, 1]),
               region=r.choice(REGIONS))


def gen_value(r, name):
    if name in ("contactMedium", "partyCharacteristic") and r.random() < 0.85 or r.random() < 0.05:
        return [rec(key=k, entries=[
            rec(value=r.choice(['{"id":"1"}', '{"id":"2","x":1}']), stamp=gen_hlc(r),
                dot=rec(region=r.choice(REGIONS), counter=r.randint(1, 4)),
                position=r.randint(0, 3))
            for _ in range(r.choice([1, 1, 2]))]) for k in sorted(r.sample(KEYS, r.randint(0, 3)))]
    return r.choice(STATUS if name == "status" else SCALARS)


def gen_party(r, resource_type):
    names = sorted(r.sample(FIELDS, r.randint(0, len(FIELDS))))
    return rec(tenant="acme", party_id="42", resource_type=resource_type,
               fields=[rec(name=n, stamp=gen_hlc(r), value=gen_value(r, n)) for n in names],
               version_vector=[rec(region=g, counter=r.randint(1, 5))
                               for g in sorted(r.sample(REGIONS, r.randint(0, 4)))],
               tombstone=gen_hlc(r) if r.random() < 0.25 else None,
               origin_region=r.choice(REGIONS))


def gen_conflict(r):
    resource_type = r.choice(["individual", "organization"])
    local = gen_party(r, resource_type)
    if r.random() < 0.3:  # a remote that shares fields and elements with local
        remote = deep_copy(local)
        for f in remote.fields:
            if r.random() < 0.5:
                f.stamp = gen_hlc(r)
            if r.random() < 0.3:
                f.value = gen_value(r, f.name)
        if r.random() < 0.3:
            remote.tombstone = gen_hlc(r) if r.random() < 0.5 else local.tombstone
    else:
        remote = gen_party(r, resource_type)
    x = r.random()
    if x < 0.03:
        remote.tenant = "other"
    elif x < 0.06:
        setattr(remote, "party-id", "43")
    elif x < 0.09:
        setattr(remote, "resource-type",
                "organization" if resource_type == "individual" else "individual")
    relation = r.choices(["concurrent", "equal", "local-dominates", "remote-dominates"],
                         [85, 7, 4, 4])[0]
    if relation == "equal" and r.random() < 0.5:
        remote = deep_copy(local)
    config = r.choice(CONFIGS) if r.random() < 0.4 else "{}"
    ctx = rec(tenant="acme", resolving_region=r.choice(REGIONS), relation=relation, config=config)
    return ctx, local, remote


# --- samples/conflicts.jsonl (the JSON form of policy_types) ---------------------------------


def sample_conflicts(path):
    text = lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    hlc = lambda h: rec(wall_ms=h["wallMs"], logical=h["logical"], region=h["region"])

    def value(v):
        if "json" in v:
            return text(v["json"])
        return [rec(key=e["key"], entries=[
            rec(value=text(n["value"]), stamp=hlc(n["stamp"]),
                dot=rec(region=n["dot"]["region"], counter=n["dot"]["counter"]),
                position=n.get("position", 0)) for n in e["entries"]]) for e in v["elements"]]

    def party(p):
        return rec(tenant=p["tenant"], party_id=p["partyId"],
                   resource_type=p["resourceType"].lower(),
                   fields=[rec(name=f["name"], stamp=hlc(f["stamp"]), value=value(f["value"]))
                           for f in p["fields"]],
                   version_vector=[rec(region=d["region"], counter=d["counter"])
                                   for d in p["versionVector"]],
                   tombstone=hlc(p["tombstone"]) if p.get("tombstone") else None,
                   origin_region=p["originRegion"])

    with open(path) as f:
        for line in f:
            c = json.loads(line)
            cx = c.get("context") or {}
            config = cx.get("config", "{}")
            ctx = rec(tenant=c["tenant"], resolving_region=cx.get("resolvingRegion", "eu"),
                      relation=cx.get("relation", "concurrent"),
                      config=config if isinstance(config, str) else text(config))
            yield c["id"], (ctx, party(c["local"]), party(c["remote"]))


def same(a, b):
    prefix = "policy configuration is not JSON: "
    canon = lambda o: ({"reject": prefix} if isinstance(o, dict)
                       and str(o.get("reject", "")).startswith(prefix) else o)
    return a == b or canon(a) == canon(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--samples", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "samples", "conflicts.jsonl"))
    ap.add_argument("--hostile", action="store_true")
    ap.add_argument("components", nargs="+")
    args = ap.parse_args()

    if args.hostile:
        empty = lambda: rec(tenant="acme", party_id="1", resource_type="individual", fields=[],
                            version_vector=[], tombstone=None, origin_region="eu")
        ctx = rec(tenant="acme", resolving_region="eu", relation="concurrent", config="{}")
        for path in args.components:
            p = Policy(path, deadline_ms=200)
            start = time.time()
            out = p.resolve(ctx, empty(), empty())
            print(f"{p.name}: {time.time() - start:.3f} s {json.dumps(out)[:300]}")
        return 0

    policies = [Policy(p) for p in args.components]
    for p in policies:
        print(f"{p.name}: {p.describe()}")
    cases = [(f"seed {s}", gen_conflict(random.Random(s))) for s in range(args.cases)]
    if os.path.exists(args.samples):
        cases += list(sample_conflicts(args.samples))
    differ = {p.name: 0 for p in policies[1:]}
    outcomes = {}
    shown = 0
    for label, conflict in cases:
        outs = [p.resolve(*conflict) for p in policies]
        kind = outs[0] if isinstance(outs[0], str) else next(iter(outs[0]))
        outcomes[kind] = outcomes.get(kind, 0) + 1
        for p, out in zip(policies[1:], outs[1:]):
            if not same(outs[0], out):
                differ[p.name] += 1
                if shown < 10:
                    shown += 1
                    print(f"DIFF {label} {p.name}:\n  {json.dumps(outs[0])[:400]}\n"
                          f"  {json.dumps(out)[:400]}")
    print(f"{len(cases)} conflicts; reference outcomes {outcomes}")
    for name, n in differ.items():
        print(f"{name}: {len(cases) - n} same, {n} differ")
    return 1 if any(differ.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
