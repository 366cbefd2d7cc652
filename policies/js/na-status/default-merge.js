// The default TMF632 merge, ported line by line from `resolver-wasm/merge/src/lib.rs` (and the
// helpers of `resolver-wasm/sdk/src/fields.rs` that the na-status rule uses).
//
// Keep it in step with the Rust original: the JavaScript and Rust na-status policies must give
// the same resolution on the same conflict. The rules:
// - scalar fields: last writer wins by hybrid logical clock (region breaks ties);
// - arrays of objects: element-wise by identity, observed-remove;
// - `status`: by lifecycle under delete-wins (the default);
// - deletes: tombstones; the tenant's configuration picks delete-wins or update-resurrects.
//
// Values as componentize-js passes them: records are objects with camelCase members, u64 is a
// BigInt, enums are their WIT case names ('local', 'concurrent', ...), variants are
// `{ tag, val }`, an absent option is `undefined` (or `null`).

// Contract revision 1.1: the host sends only what the two versions do not hold identically, and
// keeps the rest as it is (docs/writing-a-policy.md, "Which contract revision to declare").
// Nothing here needs whole versions; a policy that derives a field from others would declare
// '1.0.0'.
export const CONTRACT_VERSION = '1.1.0';

export const DELETE_WINS = 'delete-wins';
const UPDATE_RESURRECTS = 'update-resurrects';

// Rust's `char::is_whitespace` (Unicode White_Space), which `str::trim` strips. JavaScript's
// `String.prototype.trim` strips a different set (it includes U+FEFF), so name it exactly.
const RUST_WHITESPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
  0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f,
  0x3000,
]);

function trimSet(text, isTrimmed) {
  let start = 0;
  let end = text.length;
  while (start < end && isTrimmed(text.charCodeAt(start))) start++;
  while (end > start && isTrimmed(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}

export function rustTrim(text) {
  return trimSet(text, (c) => RUST_WHITESPACE.has(c));
}

/// Compares two strings by code point, which is the byte order of their UTF-8 (Rust's order).
/// JavaScript's `<` compares UTF-16 code units, which puts U+10000.. before U+E000..U+FFFF.
export function cmpStr(a, b) {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // Surrogates (U+D800..U+DFFF) move above U+E000..U+FFFF.
      if (x >= 0xd800) x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      if (y >= 0xd800) y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      return x < y ? -1 : 1;
    }
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/// Hlc order: (wall-ms, logical, region).
export function cmpHlc(a, b) {
  return cmp(a.wallMs, b.wallMs) || cmp(a.logical, b.logical) || cmpStr(a.region, b.region);
}

function isSome(option) {
  return option !== undefined && option !== null;
}

/// `PartyVersion::field`: the field called `name` (fields are sorted by name, unique).
export function field(party, name) {
  for (const f of party.fields) {
    if (f.name === name) return f;
  }
  return undefined;
}

function resourceTypeStr(resourceType) {
  return resourceType === 'individual' ? 'Individual' : 'Organization';
}

// --- configuration (config.rs) ---------------------------------------------------------------

/// Approximately serde_json's `Display` of a value (compact, object members sorted).
function display(value) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value).sort(cmpStr);
    return `{${keys.map((k) => `${JSON.stringify(k)}:${display(value[k])}`).join(',')}}`;
  }
  if (Array.isArray(value)) return `[${value.map(display).join(',')}]`;
  return JSON.stringify(value);
}

/// `Config::parse`: returns `{ deleteRule }` or `{ reason }`.
export function parseConfig(text) {
  text = rustTrim(text);
  if (text === '' || text === '{}') return { deleteRule: DELETE_WINS };
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { reason: `policy configuration is not JSON: ${e.message}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { reason: 'policy configuration must be a JSON object' };
  }
  let deleteRule = DELETE_WINS;
  // serde_json's map is a BTreeMap: members are visited in key order, the last duplicate wins
  // (as JSON.parse keeps it).
  for (const key of Object.keys(value).sort(cmpStr)) {
    const member = value[key];
    if (key === 'deleteRule') {
      if (member === DELETE_WINS) deleteRule = DELETE_WINS;
      else if (member === UPDATE_RESURRECTS) deleteRule = UPDATE_RESURRECTS;
      else {
        return {
          reason: `deleteRule must be "delete-wins" or "update-resurrects", found ${display(member)}`,
        };
      }
    } else {
      return {
        reason: `unknown member ${JSON.stringify(key)} in policy configuration (known: deleteRule)`,
      };
    }
  }
  return { deleteRule };
}

// --- lifecycle (lifecycle.rs) ----------------------------------------------------------------

export function lifecycleRank(resourceType, statusJson) {
  const status = trimSet(rustTrim(statusJson), (c) => c === 0x22);
  if (status === 'initialized') return 1;
  if (status === 'validated') return 2;
  if (resourceType === 'individual' && (status === 'deceased' || status === 'deceaded')) return 3;
  if (resourceType === 'organization' && status === 'closed') return 3;
  return 0;
}

// Whether a status (JSON text) is the last state of its lifecycle: an Individual's `deceased`
// (`deceaded`), an Organization's `closed`.
export function isTerminal(resourceType, statusJson) {
  return lifecycleRank(resourceType, statusJson) === 3;
}

// --- version vectors (types/src/causality.rs) ------------------------------------------------

export function joinVectors(a, b) {
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length) {
      const x = a[i];
      const y = b[j];
      const ord = cmpStr(x.region, y.region);
      if (ord < 0) {
        out.push({ region: x.region, counter: x.counter });
        i++;
      } else if (ord > 0) {
        out.push({ region: y.region, counter: y.counter });
        j++;
      } else {
        const w = x.counter >= y.counter ? x : y;
        out.push({ region: w.region, counter: w.counter });
        i++;
        j++;
      }
    } else if (i < a.length) {
      out.push({ region: a[i].region, counter: a[i].counter });
      i++;
    } else {
      out.push({ region: b[j].region, counter: b[j].counter });
      j++;
    }
  }
  return out;
}

/// Whether a vector (sorted by region, one dot per region) has seen the write `dot`.
function covers(vector, dot) {
  for (const d of vector) {
    if (d.region === dot.region) return d.counter >= dot.counter;
  }
  return false;
}

// --- deep equality of two party versions (Rust's derived PartialEq) --------------------------

function hlcEq(a, b) {
  return a.wallMs === b.wallMs && a.logical === b.logical && a.region === b.region;
}

function optionHlcEq(a, b) {
  if (!isSome(a) || !isSome(b)) return !isSome(a) && !isSome(b);
  return hlcEq(a, b);
}

function dotEq(a, b) {
  return a.region === b.region && a.counter === b.counter;
}

function listEq(a, b, eq) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!eq(a[i], b[i])) return false;
  return true;
}

function entryEq(a, b) {
  return (
    a.value === b.value && hlcEq(a.stamp, b.stamp) && dotEq(a.dot, b.dot) && a.position === b.position
  );
}

function elementEq(a, b) {
  return a.key === b.key && listEq(a.entries, b.entries, entryEq);
}

function fieldEq(a, b) {
  if (a.name !== b.name || !hlcEq(a.stamp, b.stamp) || a.value.tag !== b.value.tag) return false;
  return a.value.tag === 'json'
    ? a.value.val === b.value.val
    : listEq(a.value.val, b.value.val, elementEq);
}

function partyEq(a, b) {
  return (
    a.tenant === b.tenant &&
    a.partyId === b.partyId &&
    a.resourceType === b.resourceType &&
    listEq(a.fields, b.fields, fieldEq) &&
    listEq(a.versionVector, b.versionVector, dotEq) &&
    optionHlcEq(a.tombstone, b.tombstone) &&
    a.originRegion === b.originRegion
  );
}

// --- the merge (merge/src/lib.rs) ------------------------------------------------------------

export function resolve(ctx, local, remote) {
  if (local.tenant !== remote.tenant || local.partyId !== remote.partyId) {
    return {
      tag: 'reject',
      val:
        'the two versions are of different parties: ' +
        `${local.tenant}/${local.partyId} and ${remote.tenant}/${remote.partyId}`,
    };
  }
  if (local.resourceType !== remote.resourceType) {
    return {
      tag: 'reject',
      val:
        `party ${local.partyId} is an ${resourceTypeStr(local.resourceType)} in one region ` +
        `and an ${resourceTypeStr(remote.resourceType)} in the other`,
    };
  }
  const config = parseConfig(ctx.config);
  if (config.reason !== undefined) return { tag: 'reject', val: config.reason };
  switch (ctx.relation) {
    case 'local-dominates':
      return { tag: 'keep-local' };
    case 'remote-dominates':
      return { tag: 'take-remote' };
    case 'equal':
      if (partyEq(local, remote)) return { tag: 'keep-local' };
      break;
    default:
      break;
  }
  return { tag: 'merged', val: merge(config.deleteRule, local, remote) };
}

function maxOption(a, b) {
  if (isSome(a) && isSome(b)) return cmpHlc(a, b) >= 0 ? a : b;
  return isSome(a) ? a : isSome(b) ? b : undefined;
}

export function merge(deleteRule, local, remote) {
  const tombstone = maxOption(local.tombstone, remote.tombstone);
  const candidate = (v) => {
    const saw =
      tombstone === undefined || deleteRule === UPDATE_RESURRECTS
        ? true
        : isSome(v.tombstone) && hlcEq(v.tombstone, tombstone);
    return (f) => saw && (tombstone === undefined || cmpHlc(f.stamp, tombstone) > 0);
  };
  const fields = [];
  const lifecycle = deleteRule === DELETE_WINS;
  mergeFields(local, remote, candidate(local), candidate(remote), tombstone, lifecycle, fields);
  return {
    tenant: local.tenant,
    partyId: local.partyId,
    versionVector: joinVectors(local.versionVector, remote.versionVector),
    fields,
    tombstone: tombstone === undefined ? undefined : { ...tombstone },
  };
}

function mergeFields(local, remote, keepLocal, keepRemote, floor, lifecycle, out) {
  let i = 0;
  let j = 0;
  const a = local.fields;
  const b = remote.fields;
  for (;;) {
    while (i < a.length && !keepLocal(a[i])) i++;
    while (j < b.length && !keepRemote(b[j])) j++;
    let ord;
    if (i < a.length && j < b.length) ord = cmpStr(a[i].name, b[j].name);
    else if (i < a.length) ord = -1;
    else if (j < b.length) ord = 1;
    else break;
    if (ord < 0) {
      out.push(oneSide(local, remote, 'local', a[i], floor));
      i++;
    } else if (ord > 0) {
      out.push(oneSide(local, remote, 'remote', b[j], floor));
      j++;
    } else {
      out.push(mergeField(local, remote, a[i], b[j], floor, lifecycle));
      i++;
      j++;
    }
  }
}

function oneSide(local, remote, side, f, floor) {
  if (f.value.tag === 'elements' && floor !== undefined) {
    const e = f.value.val;
    const [a, b] = side === 'local' ? [e, []] : [[], e];
    return {
      name: f.name,
      value: {
        tag: 'elements',
        val: { stampFrom: side, elements: mergeElements(local, remote, a, b, floor) },
      },
    };
  }
  return copy(f.name, side);
}

function copy(name, side) {
  return { name, value: { tag: 'copy', val: side } };
}

function mergeField(local, remote, x, y, floor, lifecycle) {
  if (x.name === 'status' && lifecycle) {
    const rank = (f) =>
      f.value.tag === 'json' ? lifecycleRank(local.resourceType, f.value.val) : 0;
    const ord = cmp(rank(x), rank(y)) || lastWriterOrd(x, y);
    return copy(x.name, ord < 0 ? 'remote' : 'local');
  }
  if (x.value.tag === 'elements' && y.value.tag === 'elements') {
    return {
      name: x.name,
      value: {
        tag: 'elements',
        val: {
          stampFrom: cmpHlc(x.stamp, y.stamp) >= 0 ? 'local' : 'remote',
          elements: mergeElements(local, remote, x.value.val, y.value.val, floor),
        },
      },
    };
  }
  return copy(x.name, lastWriterOrd(x, y) < 0 ? 'remote' : 'local');
}

/// The merge's order of two writes of a field: by stamp, then by value.
function lastWriterOrd(x, y) {
  const ord = cmpHlc(x.stamp, y.stamp);
  if (ord !== 0) return ord;
  const xj = x.value.tag === 'json';
  const yj = y.value.tag === 'json';
  if (xj && yj) return cmpStr(x.value.val, y.value.val);
  if (xj) return -1;
  if (yj) return 1;
  return cmp(x.value.val.length, y.value.val.length);
}

function mergeElements(local, remote, a, b, floor) {
  const out = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let ord;
    if (i < a.length && j < b.length) ord = cmpStr(a[i].key, b[j].key);
    else if (i < a.length) ord = -1;
    else ord = 1;
    const refs = [];
    if (ord < 0) {
      survivors('local', i, a[i], undefined, remote.versionVector, floor, refs);
      i++;
    } else if (ord > 0) {
      survivors('remote', j, b[j], undefined, local.versionVector, floor, refs);
      j++;
    } else {
      survivors('local', i, a[i], b[j], remote.versionVector, floor, refs);
      survivors('remote', j, b[j], a[i], local.versionVector, floor, refs);
      i++;
      j++;
    }
    if (refs.length > 0) out.push(refs);
  }
  return out;
}

function survivors(side, index, element, other, otherVector, floor, refs) {
  element.entries.forEach((entry, k) => {
    if (floor !== undefined && cmpHlc(entry.stamp, floor) <= 0) return; // written before the delete
    const heldByOther =
      other !== undefined && other.entries.some((e) => dotEq(e.dot, entry.dot));
    const keep = heldByOther ? side === 'local' : !covers(otherVector, entry.dot);
    if (keep) refs.push({ side, element: index, entry: k });
  });
}

// --- SDK helpers (sdk/src/fields.rs) ---------------------------------------------------------

/// `fields::last_writer`: which of two writes of a field wins (stamp, then JSON text).
export function lastWriter(local, remote) {
  let ord = cmpHlc(local.stamp, remote.stamp);
  if (ord === 0 && local.value.tag === 'json' && remote.value.tag === 'json') {
    ord = cmpStr(local.value.val, remote.value.val);
  }
  return ord < 0 ? 'remote' : 'local';
}

/// `fields::set_field`: replaces how `name` is taken in a merged party (adds it if absent).
export function setField(merged, name, value) {
  const f = merged.fields.find((x) => x.name === name);
  if (f !== undefined) f.value = value;
  else merged.fields.push({ name, value });
}

// --- per-field causality (types/src/writes.rs, sdk/src/fields.rs; contract revision 1.3) -----
//
// A policy built for the world `writes-policy` that declares '1.3.0' exports `writesResolver`
// beside `resolver` and is called at `writesResolver.resolve(ctx, local, localWrites, remote,
// remoteWrites)`. Each writes table is `{ fields, tombstone, writes }`: for each field the dot
// of the write that set it (`{ name, dot }`, sorted by name), the tombstone's write, and each of
// those writes' context (`{ dot, context }`, sorted by dot). Empty where the version was stored
// before writes were recorded: then every write is unknown.

export const NO_WRITES = { fields: [], tombstone: undefined, writes: [] };

/// `Writes::field`: the dot of the write that set `name`, or undefined when unknown.
export function fieldWrite(writes, name) {
  const f = writes.fields.find((x) => x.name === name);
  return f === undefined ? undefined : f.dot;
}

/// `Writes::context`: the version vector the write `dot` was made over, or undefined.
export function writeContext(writes, dot) {
  const w = writes.writes.find((x) => dotEq(x.dot, dot));
  return w === undefined ? undefined : w.context;
}

/// `fields::seen`: how many of `region`'s writes the write that set `name` had seen, counting
/// itself when `region` made it (a BigInt); undefined when the party lacks the field, or its
/// write or that write's context is unknown.
export function seen(party, writes, name, region) {
  if (field(party, name) === undefined) return undefined;
  const dot = fieldWrite(writes, name);
  if (dot === undefined) return undefined;
  const context = writeContext(writes, dot);
  if (context === undefined) return undefined;
  if (dot.region === region) return dot.counter;
  const d = context.find((x) => x.region === region);
  return d === undefined ? 0n : d.counter;
}

const UNKNOWN = 'unknown';

// What stands behind `name` on one side: null (never set), a dot, or UNKNOWN.
function behind(party, writes, name) {
  if (field(party, name) !== undefined) {
    const dot = fieldWrite(writes, name);
    return dot === undefined ? UNKNOWN : dot;
  }
  if (!isSome(party.tombstone)) return null;
  return isSome(writes.tombstone) ? writes.tombstone : UNKNOWN;
}

/// `fields::change`: which side changed `name` since the other saw it: 'same', 'local',
/// 'remote', 'both' (concurrently, or two merges that chose differently) or 'unknown' (a side
/// holds a value whose write was not recorded). A field a side lacks stands for that side's
/// delete when it has a tombstone, and for no write at all otherwise.
export function change(local, localWrites, remote, remoteWrites, name) {
  const l = behind(local, localWrites, name);
  const r = behind(remote, remoteWrites, name);
  if (l === UNKNOWN || r === UNKNOWN) return UNKNOWN;
  if (l === null || r === null ? l === r : dotEq(l, r)) return 'same';
  const lUnseen = l !== null && !covers(remote.versionVector, l);
  const rUnseen = r !== null && !covers(local.versionVector, r);
  if (lUnseen && !rUnseen) return 'local';
  if (rUnseen && !lUnseen) return 'remote';
  return 'both';
}
