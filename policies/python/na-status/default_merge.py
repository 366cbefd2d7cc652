"""The default TMF632 merge, ported line by line from `resolver-wasm/merge/src/lib.rs` (and the
helpers of `resolver-wasm/sdk/src/fields.rs` that the na-status rule uses).

Keep it in step with the Rust original: the Python and Rust na-status policies must give the
same resolution on the same conflict. The rules:
- scalar fields: last writer wins by hybrid logical clock (region breaks ties);
- arrays of objects: element-wise by identity, observed-remove;
- `status`: by lifecycle under delete-wins (the default);
- deletes: tombstones; the tenant's configuration picks delete-wins or update-resurrects.

Strings compare by code point, which is the byte order of their UTF-8 (Rust's order).
"""

import json

from wit_world.exports.resolver import (
    Dot,
    EntryRef,
    FieldValue_Elements,
    FieldValue_Json,
    MergedElements,
    MergedField,
    MergedParty,
    MergedValue_Copy,
    MergedValue_Elements,
    Relation,
    Resolution_KeepLocal,
    Resolution_Merged,
    Resolution_Reject,
    Resolution_TakeRemote,
    ResourceType,
    Side,
)

# Contract revision 1.1: the host sends only what the two versions do not hold identically, and
# keeps the rest as it is (docs/writing-a-policy.md, "Which contract revision to declare"). Nothing
# here needs whole versions; a policy that derives a field from others would declare "1.0.0".
CONTRACT_VERSION = "1.1.0"

DELETE_WINS = "delete-wins"
UPDATE_RESURRECTS = "update-resurrects"

# Rust's `char::is_whitespace` (Unicode White_Space), which `str::trim` strips. Python's
# `str.strip()` strips a different set (it includes U+001C..U+001F), so name it exactly.
_RUST_WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)


def rust_trim(text):
    return text.strip(_RUST_WHITESPACE)


def _cmp(a, b):
    return (a > b) - (a < b)


def hlc_key(h):
    """Hlc order: (wall-ms, logical, region)."""
    return (h.wall_ms, h.logical, h.region)


def field(party, name):
    """`PartyVersion::field`: the field called `name` (fields are sorted by name, unique)."""
    for f in party.fields:
        if f.name == name:
            return f
    return None


def resource_type_str(resource_type):
    return "Individual" if resource_type == ResourceType.INDIVIDUAL else "Organization"


# --- configuration (config.rs) -------------------------------------------------------------


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _display(value):
    """Approximately serde_json's `Display` of a value (compact, object members sorted)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def parse_config(text):
    """`Config::parse`: returns (delete_rule, None) or (None, reason)."""
    text = rust_trim(text)
    if text == "" or text == "{}":
        return DELETE_WINS, None
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        return None, f"policy configuration is not JSON: {e}"
    if not isinstance(value, dict):
        return None, "policy configuration must be a JSON object"
    delete_rule = DELETE_WINS
    # serde_json's map is a BTreeMap: members are visited in key order, the last duplicate wins.
    for key in sorted(value):
        member = value[key]
        if key == "deleteRule":
            if member == DELETE_WINS and isinstance(member, str):
                delete_rule = DELETE_WINS
            elif member == UPDATE_RESURRECTS and isinstance(member, str):
                delete_rule = UPDATE_RESURRECTS
            else:
                return None, (
                    'deleteRule must be "delete-wins" or "update-resurrects", '
                    f"found {_display(member)}"
                )
        else:
            return None, (
                f"unknown member {json.dumps(key, ensure_ascii=False)} in policy configuration "
                "(known: deleteRule)"
            )
    return delete_rule, None


# --- lifecycle (lifecycle.rs) --------------------------------------------------------------


def lifecycle_rank(resource_type, status_json):
    status = rust_trim(status_json).strip('"')
    if status == "initialized":
        return 1
    if status == "validated":
        return 2
    if resource_type == ResourceType.INDIVIDUAL and status in ("deceased", "deceaded"):
        return 3
    if resource_type == ResourceType.ORGANIZATION and status == "closed":
        return 3
    return 0


def is_terminal(resource_type, status_json):
    """Whether a status (JSON text) is the last state of its lifecycle: an Individual's
    `deceased` (`deceaded`), an Organization's `closed`."""
    return lifecycle_rank(resource_type, status_json) == 3


# --- version vectors (types/src/causality.rs) ----------------------------------------------


def join_vectors(a, b):
    out = []
    i = j = 0
    while i < len(a) or j < len(b):
        if i < len(a) and j < len(b):
            x, y = a[i], b[j]
            if x.region < y.region:
                out.append(Dot(x.region, x.counter))
                i += 1
            elif x.region > y.region:
                out.append(Dot(y.region, y.counter))
                j += 1
            else:
                w = x if x.counter >= y.counter else y
                out.append(Dot(w.region, w.counter))
                i += 1
                j += 1
        elif i < len(a):
            out.append(Dot(a[i].region, a[i].counter))
            i += 1
        else:
            out.append(Dot(b[j].region, b[j].counter))
            j += 1
    return out


def covers(vector, dot):
    """Whether a vector (sorted by region, one dot per region) has seen the write `dot`."""
    for d in vector:
        if d.region == dot.region:
            return d.counter >= dot.counter
    return False


# --- the merge (merge/src/lib.rs) ----------------------------------------------------------


def resolve(ctx, local, remote):
    if local.tenant != remote.tenant or local.party_id != remote.party_id:
        return Resolution_Reject(
            "the two versions are of different parties: "
            f"{local.tenant}/{local.party_id} and {remote.tenant}/{remote.party_id}"
        )
    if local.resource_type != remote.resource_type:
        return Resolution_Reject(
            f"party {local.party_id} is an {resource_type_str(local.resource_type)} in one region "
            f"and an {resource_type_str(remote.resource_type)} in the other"
        )
    delete_rule, reason = parse_config(ctx.config)
    if reason is not None:
        return Resolution_Reject(reason)
    if ctx.relation == Relation.LOCAL_DOMINATES:
        return Resolution_KeepLocal()
    if ctx.relation == Relation.REMOTE_DOMINATES:
        return Resolution_TakeRemote()
    if ctx.relation == Relation.EQUAL and local == remote:
        return Resolution_KeepLocal()
    return Resolution_Merged(merge(delete_rule, local, remote))


def _max_option(a, b):
    if a is not None and b is not None:
        return a if hlc_key(a) >= hlc_key(b) else b
    return a if a is not None else b


def merge(delete_rule, local, remote):
    tombstone = _max_option(local.tombstone, remote.tombstone)

    def candidate(v):
        if tombstone is None or delete_rule == UPDATE_RESURRECTS:
            saw = True
        else:
            saw = v.tombstone is not None and hlc_key(v.tombstone) == hlc_key(tombstone)
        return lambda f: saw and (tombstone is None or hlc_key(f.stamp) > hlc_key(tombstone))

    fields = []
    lifecycle = delete_rule == DELETE_WINS
    _merge_fields(local, remote, candidate(local), candidate(remote), tombstone, lifecycle, fields)
    return MergedParty(
        tenant=local.tenant,
        party_id=local.party_id,
        version_vector=join_vectors(local.version_vector, remote.version_vector),
        fields=fields,
        tombstone=tombstone,
    )


def _merge_fields(local, remote, keep_local, keep_remote, floor, lifecycle, out):
    i = j = 0
    a, b = local.fields, remote.fields
    while True:
        while i < len(a) and not keep_local(a[i]):
            i += 1
        while j < len(b) and not keep_remote(b[j]):
            j += 1
        if i < len(a) and j < len(b):
            ord_ = _cmp(a[i].name, b[j].name)
        elif i < len(a):
            ord_ = -1
        elif j < len(b):
            ord_ = 1
        else:
            break
        if ord_ < 0:
            out.append(_one_side(local, remote, Side.LOCAL, a[i], floor))
            i += 1
        elif ord_ > 0:
            out.append(_one_side(local, remote, Side.REMOTE, b[j], floor))
            j += 1
        else:
            out.append(_merge_field(local, remote, a[i], b[j], floor, lifecycle))
            i += 1
            j += 1


def _one_side(local, remote, side, f, floor):
    if isinstance(f.value, FieldValue_Elements) and floor is not None:
        e = f.value.value
        a, b = (e, []) if side == Side.LOCAL else ([], e)
        return MergedField(
            f.name,
            MergedValue_Elements(
                MergedElements(side, _merge_elements(local, remote, a, b, floor))
            ),
        )
    return _copy(f.name, side)


def _copy(name, side):
    return MergedField(name, MergedValue_Copy(side))


def _merge_field(local, remote, x, y, floor, lifecycle):
    if x.name == "status" and lifecycle:

        def rank(f):
            if isinstance(f.value, FieldValue_Json):
                return lifecycle_rank(local.resource_type, f.value.value)
            return 0

        ord_ = _cmp(rank(x), rank(y)) or _last_writer(x, y)
        return _copy(x.name, Side.REMOTE if ord_ < 0 else Side.LOCAL)
    if isinstance(x.value, FieldValue_Elements) and isinstance(y.value, FieldValue_Elements):
        stamp_from = Side.LOCAL if hlc_key(x.stamp) >= hlc_key(y.stamp) else Side.REMOTE
        return MergedField(
            x.name,
            MergedValue_Elements(
                MergedElements(
                    stamp_from,
                    _merge_elements(local, remote, x.value.value, y.value.value, floor),
                )
            ),
        )
    return _copy(x.name, Side.REMOTE if _last_writer(x, y) < 0 else Side.LOCAL)


def _last_writer(x, y):
    """The merge's order of two writes of a field: by stamp, then by value."""
    ord_ = _cmp(hlc_key(x.stamp), hlc_key(y.stamp))
    if ord_ != 0:
        return ord_
    xj, yj = isinstance(x.value, FieldValue_Json), isinstance(y.value, FieldValue_Json)
    if xj and yj:
        return _cmp(x.value.value, y.value.value)
    if xj:
        return -1
    if yj:
        return 1
    return _cmp(len(x.value.value), len(y.value.value))


def _merge_elements(local, remote, a, b, floor):
    out = []
    i = j = 0
    while i < len(a) or j < len(b):
        if i < len(a) and j < len(b):
            ord_ = _cmp(a[i].key, b[j].key)
        elif i < len(a):
            ord_ = -1
        else:
            ord_ = 1
        refs = []
        if ord_ < 0:
            _survivors(Side.LOCAL, i, a[i], None, remote.version_vector, floor, refs)
            i += 1
        elif ord_ > 0:
            _survivors(Side.REMOTE, j, b[j], None, local.version_vector, floor, refs)
            j += 1
        else:
            _survivors(Side.LOCAL, i, a[i], b[j], remote.version_vector, floor, refs)
            _survivors(Side.REMOTE, j, b[j], a[i], local.version_vector, floor, refs)
            i += 1
            j += 1
        if refs:
            out.append(refs)
    return out


def _survivors(side, index, element, other, other_vector, floor, refs):
    for k, entry in enumerate(element.entries):
        if floor is not None and hlc_key(entry.stamp) <= hlc_key(floor):
            continue  # written before the delete
        held_by_other = other is not None and any(
            e.dot.region == entry.dot.region and e.dot.counter == entry.dot.counter
            for e in other.entries
        )
        if held_by_other:
            keep = side == Side.LOCAL
        else:
            keep = not covers(other_vector, entry.dot)
        if keep:
            refs.append(EntryRef(side, index, k))


# --- SDK helpers (sdk/src/fields.rs) -------------------------------------------------------


def last_writer(local, remote):
    """`fields::last_writer`: which of two writes of a field wins (stamp, then JSON text)."""
    ord_ = _cmp(hlc_key(local.stamp), hlc_key(remote.stamp))
    if ord_ == 0 and isinstance(local.value, FieldValue_Json) and isinstance(
        remote.value, FieldValue_Json
    ):
        ord_ = _cmp(local.value.value, remote.value.value)
    return Side.REMOTE if ord_ < 0 else Side.LOCAL


def set_field(merged, name, value):
    """`fields::set_field`: replaces how `name` is taken in a merged party (adds it if absent)."""
    for f in merged.fields:
        if f.name == name:
            f.value = value
            return
    merged.fields.append(MergedField(name, value))


# --- per-field causality (types/src/writes.rs, sdk/src/fields.rs; contract revision 1.3) ----
#
# A policy built for the world `writes-policy` that declares "1.3.0" is called at
# `WritesResolver.resolve(ctx, local, local_writes, remote, remote_writes)`; each `writes` is a
# `Writes(fields, tombstone, writes)` of `wit_world.exports.writes_resolver`: for each field the
# dot of the write that set it (`FieldWrite(name, dot)`, sorted by name), the tombstone's write,
# and each of those writes' context (`Write(dot, context)`, sorted by dot). Empty where the
# version was stored before writes were recorded: then every write is unknown.

SAME, LOCAL, REMOTE, BOTH, UNKNOWN = "same", "local", "remote", "both", "unknown"


def field_write(writes, name):
    """`Writes::field`: the dot of the write that set `name`, or None when unknown."""
    for f in writes.fields:
        if f.name == name:
            return f.dot
    return None


def write_context(writes, dot):
    """`Writes::context`: the version vector the write `dot` was made over, or None."""
    for w in writes.writes:
        if w.dot.region == dot.region and w.dot.counter == dot.counter:
            return w.context
    return None


def seen(party, writes, name, region):
    """`fields::seen`: how many of `region`'s writes the write that set `name` had seen,
    counting itself when `region` made it; None when the party lacks the field or its write or
    that write's context is unknown."""
    if field(party, name) is None:
        return None
    dot = field_write(writes, name)
    if dot is None:
        return None
    context = write_context(writes, dot)
    if context is None:
        return None
    if dot.region == region:
        return dot.counter
    for d in context:
        if d.region == region:
            return d.counter
    return 0


def _behind(party, writes, name):
    """What stands behind `name` on one side: None (never set), a dot, or UNKNOWN."""
    if field(party, name) is not None:
        dot = field_write(writes, name)
        return UNKNOWN if dot is None else dot
    if party.tombstone is None:
        return None
    return UNKNOWN if writes.tombstone is None else writes.tombstone


def _same_write(a, b):
    if a is None or b is None or a is UNKNOWN or b is UNKNOWN:
        return a is b
    return a.region == b.region and a.counter == b.counter


def change(local, local_writes, remote, remote_writes, name):
    """`fields::change`: which side changed `name` since the other saw it — SAME, LOCAL,
    REMOTE, BOTH (concurrently, or two merges that chose differently) or UNKNOWN (a side holds
    a value whose write was not recorded). A field a side lacks stands for that side's delete
    when it has a tombstone, and for no write at all otherwise."""
    l = _behind(local, local_writes, name)
    r = _behind(remote, remote_writes, name)
    if l is UNKNOWN or r is UNKNOWN:
        return UNKNOWN
    if _same_write(l, r):
        return SAME
    l_unseen = l is not None and not covers(remote.version_vector, l)
    r_unseen = r is not None and not covers(local.version_vector, r)
    if l_unseen and not r_unseen:
        return LOCAL
    if r_unseen and not l_unseen:
        return REMOTE
    return BOTH
