"""The argument of docs/per-field-causality.md, run: status writes in three regions, random
replication schedules, pairwise merges as the hosts do them (a dominated or equal version is
settled by the host; only concurrent versions reach the rule). After every region has
exchanged with every other, do all regions hold the same status?

- "naive pairwise": the write the other side had not seen wins; of two concurrent writes, NA's;
  otherwise the later stamp. Some schedules end with regions that have seen the same writes
  (equal version vectors, so no policy is ever called again) holding different statuses.
- "keyed": the greatest write by (how many of NA's writes its writer had seen, counting itself
  if it is NA's; then its stamp). No schedule diverges.

A model of the argument, not of the product: python3 docs/per-field-causality/check.py
"""
import random
REG = ["apac", "eu", "na"]

class W:  # a status write
    def __init__(s, id, region, stamp, ctx):
        s.id, s.region, s.stamp, s.ctx = id, region, stamp, dict(ctx)  # ctx: vv seen before
        s.dot = (region, ctx.get(region, 0) + 1)

def seen(vv, w): return vv.get(w.dot[0], 0) >= w.dot[1]

def naive(l, lvv, r, rvv):
    if seen(rvv, l) and not seen(lvv, r): return r
    if seen(lvv, r) and not seen(rvv, l): return l
    if l is r: return l
    ln, rn = l.region == "na", r.region == "na"
    if ln != rn: return l if ln else r
    return l if l.stamp > r.stamp else r

def keyed(l, lvv, r, rvv):
    k = lambda w: (w.ctx.get("na", 0) + (1 if w.region == "na" else 0), w.stamp)
    return l if k(l) >= k(r) else r

def run(rule, seed):
    rnd = random.Random(seed)
    st = {g: (None, {}) for g in REG}
    inflight = []
    clock = 0
    for step in range(rnd.randint(3, 12)):
        g = rnd.choice(REG)
        if rnd.random() < 0.5:
            w0, vv = st[g]
            clock += rnd.randint(1, 5)
            stamp = max(clock, (w0.stamp + 1) if w0 else 0)  # later than the stored field
            w = W(step, g, stamp, vv)
            vv = dict(vv); vv[g] = w.dot[1]
            st[g] = (w, vv)
        inflight.append((g, st[g]))
        # deliver some in-flight versions, in random order
        rnd.shuffle(inflight)
        keep = []
        for (src, (w, vv)) in inflight:
            if rnd.random() < 0.5: keep.append((src, (w, vv))); continue
            for dst in REG:
                if dst == src or rnd.random() < 0.3: continue
                st[dst] = merge(rule, st[dst], (w, vv))
        inflight = keep
    # heal: everyone exchanges until stable
    for _ in range(4):
        for a in REG:
            for b in REG:
                if a != b: st[b] = merge(rule, st[b], st[a])
    vals = {g: (st[g][0].id if st[g][0] else None) for g in REG}
    vvs = {g: tuple(sorted(st[g][1].items())) for g in REG}
    return len(set(vals.values())) == 1, vals, vvs

def merge(rule, local, remote):
    (l, lvv), (r, rvv) = local, remote
    j = {k: max(lvv.get(k, 0), rvv.get(k, 0)) for k in set(lvv) | set(rvv)}
    if r is None: return (l, j)
    if l is None: return (r, j)
    # dominated versions: the host takes the dominating one, no rule involved
    if all(lvv.get(k,0) >= v for k, v in rvv.items()): return (l, j)   # equal or local dominates: keep local
    if all(rvv.get(k,0) >= v for k, v in lvv.items()): return (r, j)
    return (rule(l, lvv, r, rvv), j)

for name, rule in [("naive pairwise", naive), ("keyed", keyed)]:
    bad = [s for s in range(100000) if not run(rule, s)[0]]
    print(f"{name}: {len(bad)} of 100000 schedules end diverged", ("e.g. seed %d %s" % (bad[0], run(rule, bad[0])[1:])) if bad else "")
