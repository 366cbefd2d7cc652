#!/usr/bin/env python3
"""Checks that each Lambda function's role grants exactly the DynamoDB, S3 and SQS actions its
code calls: no fewer (the call would first fail in a real account; moto does not enforce IAM),
no more (least privilege), and nothing that is not an IAM action.

Usage: scripts/iam-permissions.py [--template deploy/template.yaml] [--transformed FILE] [--explain]
                                   [--root DIR]
  --transformed  the template after the SAM transform (JSON); made here when not given
  --root         the repository whose Rust sources are read (default: this one; tests point it
                 at a changed copy)
  --explain      print, for every action the code needs, the call path that needs it
Exit status: 0 when every role matches its code; 1 on a missing or extra action, a DynamoDB table
statement without the tenant condition, or code this check cannot read; 2 on bad arguments.

How the code side is derived, statically, from the Rust source (no build):
- The binaries are host-lambda's src/bin/*.rs and the [[bin]] targets of the crates in CRATES;
  a function runs the binary its CodeUri (../target/lambda/<bin>/) names.
- A call graph over the functions of CRATES' sources (test modules left out), from the binary's
  `main`: `Type::f` / `Self::f` go to that type's `f`; `.f(...)` goes to every method `f` of a
  type that reachable code mentions (so an unwired store's methods never count); a bare `f`
  (called or passed as a value) goes to every free function `f`. Names are matched, not types:
  it over-approximates (a reachable `.state(...)` reaches every live type's `state`), never
  under-approximates, except through macros and trait objects built outside CRATES.
- An SDK operation is a call `.get_item()` (empty arguments: the fluent builder) in a reachable
  function; SDK_OPERATIONS maps it to the IAM action that authorises it. A transaction
  (`.transact_write_items()`) is authorised by its parts, `TransactWriteItem::builder().put(..)`
  (PutItem), `.update(..)` (UpdateItem), `.delete(..)` (DeleteItem), `.condition_check(..)`
  (ConditionCheckItem), found in the calling function and the functions it calls.
- The resource: the configuration fields (`config.tables.party`, or a field of the config
  itself) named where the calling type is constructed (or, for a free function, by its reachable
  callers), of the service's kind by the environment variable that sets the field (`*_TABLE`,
  `*_BUCKET`, `*_QUEUE_URL`); host-lambda's config.rs names each field's environment variable,
  and the template's Environment gives its value (a table name, a bucket name, a Ref to a
  queue). A `Query` with an index name also needs the table's indexes.
- Event source mappings add what Lambda's poller does with the function's role: SQS receive,
  delete and attributes; DynamoDB stream reads and ListStreams; SendMessage to an on-failure
  destination.

The template side: each function's role in the transformed template, its inline policies' Allow
statements on dynamodb/s3/sqs, normalised to (action, resource). Managed policies other than
those in HARMLESS_MANAGED_POLICIES are refused (their actions cannot be compared here). Every
DynamoDB statement on a table carries the tenant condition
(Fn::If [IsTenantScoped, {...: {dynamodb:LeadingKeys: ...TenantId...}}, AWS::NoValue]).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# The crates between a Lambda binary and the SDK calls: the binaries' own crates, the AWS stores,
# and the libraries that call the stores through their traits.
CRATES = ["host-lambda", "host-lambda/rollout", "host-aws", "host-core", "policy-admin"]
# The module whose configuration fields name the environment variables.
CONFIG_RS = "host-lambda/src/config.rs"

# SDK operation (fluent builder method) -> (service, IAM action); None: authorised by its parts.
SDK_OPERATIONS = {
    "get_item": ("dynamodb", "dynamodb:GetItem"),
    "put_item": ("dynamodb", "dynamodb:PutItem"),
    "update_item": ("dynamodb", "dynamodb:UpdateItem"),
    "delete_item": ("dynamodb", "dynamodb:DeleteItem"),
    "query": ("dynamodb", "dynamodb:Query"),
    "scan": ("dynamodb", "dynamodb:Scan"),
    "batch_get_item": ("dynamodb", "dynamodb:BatchGetItem"),
    "batch_write_item": ("dynamodb", "dynamodb:BatchWriteItem"),
    "transact_get_items": ("dynamodb", "dynamodb:GetItem"),
    "transact_write_items": ("dynamodb", None),
    "describe_table": ("dynamodb", "dynamodb:DescribeTable"),
    # The Streams API, on the table's stream (resource suffix /stream/*).
    "get_shard_iterator": ("dynamodb", "dynamodb:GetShardIterator"),
    "get_records": ("dynamodb", "dynamodb:GetRecords"),
    "get_object": ("s3", "s3:GetObject"),
    # HeadObject has no action of its own: s3:GetObject authorises it.
    "head_object": ("s3", "s3:GetObject"),
    "put_object": ("s3", "s3:PutObject"),
    "delete_object": ("s3", "s3:DeleteObject"),
    "list_objects_v2": ("s3", "s3:ListBucket"),
    "send_message": ("sqs", "sqs:SendMessage"),
    "send_message_batch": ("sqs", "sqs:SendMessage"),
    "receive_message": ("sqs", "sqs:ReceiveMessage"),
    "delete_message": ("sqs", "sqs:DeleteMessage"),
    "delete_message_batch": ("sqs", "sqs:DeleteMessage"),
    "change_message_visibility": ("sqs", "sqs:ChangeMessageVisibility"),
    "get_queue_attributes": ("sqs", "sqs:GetQueueAttributes"),
}
TRANSACTION_PARTS = {
    "put": "dynamodb:PutItem",
    "update": "dynamodb:UpdateItem",
    "delete": "dynamodb:DeleteItem",
    "condition_check": "dynamodb:ConditionCheckItem",
}
# The suffix of the environment variable that sets a configuration field -> the service whose
# resource the field names.
FIELD_KINDS = {"_TABLE": "dynamodb", "_BUCKET": "s3", "_QUEUE_URL": "sqs"}
SERVICES = ("dynamodb", "s3", "sqs")
# Managed policies SAM attaches that grant nothing on DynamoDB, S3 or SQS.
HARMLESS_MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess",
    "AWSXRayDaemonWriteAccess",
}


# ------------------------------------------------------------------------------ Rust source


def sanitise(text: str) -> str:
    """The source with comments blanked and string/char literal contents blanked (same length,
    newlines kept), so braces and names inside them do not count."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := re.match(r'b?r(#*)"', text[i : i + 260])) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            j = text.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            blank(i + m.end(), j - len(close))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if text.startswith("\\", i + 1):
                j = text.find("'", i + 2)
                blank(i + 1, j)
                i = j + 1
            elif i + 2 < n and text[i + 2] == "'":
                blank(i + 1, i + 2)
                i += 3
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def matching(text: str, open_at: int) -> int:
    """The index just after the brace that closes the one at `open_at`."""
    depth = 0
    for j in range(open_at, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError(f"unbalanced braces from offset {open_at}")


ITEM = re.compile(r"\b(impl|trait|fn|mod)\b")


def is_test_item(text: str, at: int) -> bool:
    """Whether the item at `at` is under #[cfg(test)] (its attributes are just before it)."""
    tail = text[max(0, at - 300) : at].rstrip()
    # Walk back over attributes directly in front of the item.
    found = []
    while True:
        m = re.search(r"#\[([^\[\]]*(?:\[[^\]]*\][^\[\]]*)*)\]\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+|unsafe\s+|const\s+)*$", tail)
        if not m:
            break
        found.append(m.group(1))
        tail = tail[: m.start()].rstrip()
    return any(re.fullmatch(r"\s*cfg\s*\(\s*test\s*\)\s*", a) for a in found)


def impl_self_type(header: str) -> tuple[str, str | None]:
    """(self type, trait) of an `impl` header (the text between `impl` and its `{`)."""
    h = header.strip()
    if h.startswith("<"):
        depth = 0
        for k, ch in enumerate(h):
            depth += ch == "<"
            depth -= ch == ">"
            if depth == 0:
                h = h[k + 1 :]
                break
    h = re.split(r"\bwhere\b", h)[0]
    trait = None
    if re.search(r"\bfor\b", h):
        trait_part, h = re.split(r"\bfor\b", h, maxsplit=1)
        trait = last_ident(trait_part)
    return last_ident(h), trait


def last_ident(path: str) -> str:
    path = re.sub(r"<.*", "", path.strip(), flags=re.S)
    names = re.findall(r"[A-Za-z_]\w*", path)
    return names[-1] if names else "?"


def top_level_parts(text: str, angles: bool) -> list[str]:
    """`text` split at the commas outside (), [], {} (and <> when `angles`), blanks dropped."""
    parts, depth, cur, k = [], 0, [], 0
    while k < len(text):
        ch = text[k]
        if text.startswith("->", k):
            cur.append("->")
            k += 2
            continue
        if ch in "([{" or (angles and ch == "<"):
            depth += 1
        elif ch in ")]}" or (angles and ch == ">"):
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        k += 1
    parts.append("".join(cur))
    return [p for p in parts if p.strip()]


def param_count(header: str) -> int:
    """How many arguments a call passes to a function with this header (`self` not counted)."""
    # Past the name and its generic parameters (which may hold `Fn(A) -> B` bounds).
    k = re.match(r"\s*\w+\s*", header).end()
    if header.startswith("<", k):
        depth = 0
        for k in range(k, len(header)):
            depth += header[k] == "<"
            depth -= header[k] == ">" and header[k - 1] != "-"
            if depth == 0:
                break
    m = re.compile(r"\(").search(header, k)
    if not m:
        return 0
    depth = 0
    for k in range(m.start(), len(header)):
        depth += header[k] == "("
        depth -= header[k] == ")"
        if depth == 0:
            params = header[m.start() + 1 : k]
            break
    else:
        return 0
    return len([p for p in top_level_parts(params, True) if not re.fullmatch(r"\s*(&\s*('\w+\s+)?)?(mut\s+)?self\b.*", p, re.S)])


def call_args(text: str, open_paren: int) -> tuple[int, bool]:
    """(number of arguments, whether a closure is among them) of the call whose `(` is at
    `open_paren`; a closure's `|a, b|` commas may be counted as arguments."""
    depth = 0
    for k in range(open_paren, len(text)):
        depth += text[k] in "([{"
        depth -= text[k] in ")]}"
        if depth == 0:
            inner = text[open_paren + 1 : k]
            return len(top_level_parts(inner, False)), "|" in inner
    return 0, False


def arity_matches(fn, args: int, closure: bool) -> bool:
    return fn.arity == args or (closure and fn.arity <= args)


class Fn:
    def __init__(self, file, crate, unit, owner, trait, name, header, body, start):
        self.file, self.crate, self.unit = file, crate, unit
        self.owner, self.trait, self.name, self.body, self.start = owner, trait, name, body, start
        self.arity = param_count(header)

    def label(self):
        where = os.path.relpath(self.file, ROOT)
        line = self.line()
        return f"{self.owner}::{self.name}" if self.owner else f"{self.name}", f"{where}:{line}"

    def line(self):
        return SOURCES[self.file].count("\n", 0, self.start) + 1

    def __repr__(self):
        a, b = self.label()
        return f"{a} ({b})"


SOURCES: dict[str, str] = {}


def parse_items(file, crate, unit, text, a, b, owner=None, trait=None, out=None):
    """The functions in text[a:b] (a module's or an impl's body), test items left out."""
    i = a
    while i < b:
        m = ITEM.search(text, i, b)
        if not m:
            break
        kw = m.group(1)
        # Only items at this block's top level: skip nested braces between i and the keyword.
        open_brace = text.find("{", i, m.start())
        if open_brace >= 0:
            i = matching(text, open_brace)
            continue
        if kw in ("mod", "impl", "trait", "fn"):
            body_open = None
            j = m.end()
            # The header ends at the first `{` or `;` at this level.
            depth_paren = 0
            while j < b:
                ch = text[j]
                if ch in "([":
                    depth_paren += 1
                elif ch in ")]":
                    depth_paren -= 1
                elif ch == ";" and depth_paren == 0:
                    break
                elif ch == "{" and depth_paren == 0:
                    body_open = j
                    break
                j += 1
            if body_open is None:
                i = j + 1
                continue
            end = matching(text, body_open)
            header = text[m.end() : body_open]
            if is_test_item(text, m.start()):
                i = end
                continue
            if kw == "mod":
                parse_items(file, crate, unit, text, body_open + 1, end - 1, None, None, out)
            elif kw == "impl":
                self_type, impl_trait = impl_self_type(header)
                parse_items(file, crate, unit, text, body_open + 1, end - 1, self_type, impl_trait, out)
            elif kw == "trait":
                name = last_ident(re.split(r"[:<]", header.strip())[0])
                parse_items(file, crate, unit, text, body_open + 1, end - 1, name, name, out)
            else:
                name = re.match(r"\s*([A-Za-z_]\w*)", header).group(1)
                out.append(Fn(file, crate, unit, owner, trait, name, header, text[body_open:end], m.start()))
                SOURCES_CLEAN[(file, m.start())] = header
            i = end
        else:
            i = m.end()
    return out


def rust_files(crate):
    src = os.path.join(ROOT, crate, "src")
    for dirpath, _, names in os.walk(src):
        for name in sorted(names):
            if name.endswith(".rs"):
                yield os.path.join(dirpath, name)


def binaries():
    """(binary name, crate, main file) of every Lambda binary in CRATES."""
    found = []
    for crate in CRATES:
        manifest = os.path.join(ROOT, crate, "Cargo.toml")
        text = open(manifest, encoding="utf-8").read()
        for block in re.findall(r"\[\[bin\]\]([^\[]*)", text):
            name = re.search(r'name\s*=\s*"([^"]+)"', block).group(1)
            path = re.search(r'path\s*=\s*"([^"]+)"', block)
            path = path.group(1) if path else f"src/bin/{name}.rs"
            found.append((name, crate, os.path.join(ROOT, crate, path)))
        bindir = os.path.join(ROOT, crate, "src", "bin")
        if os.path.isdir(bindir):
            for f in sorted(os.listdir(bindir)):
                if f.endswith(".rs") and not any(p == os.path.join(bindir, f) for _, _, p in found):
                    found.append((f[:-3], crate, os.path.join(bindir, f)))
    return found


def crate_dependencies():
    """crate dir -> the CRATES it can see: itself and its [dependencies], transitively."""
    names, deps = {}, {}
    for crate in CRATES:
        text = open(os.path.join(ROOT, crate, "Cargo.toml"), encoding="utf-8").read()
        names[re.search(r'^name\s*=\s*"([^"]+)"', text, re.M).group(1)] = crate
        section = re.search(r"^\[dependencies\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
        deps[crate] = re.findall(r"^([A-Za-z0-9_-]+)\s*[.=]", section.group(1), re.M) if section else []
    seen = {}
    for crate in CRATES:
        todo, found = [crate], set()
        while todo:
            c = todo.pop()
            if c in found:
                continue
            found.add(c)
            todo.extend(names[d] for d in deps[c] if d in names)
        seen[crate] = found
    return seen


def load_functions(errors):
    """Every function of CRATES; a binary's own files are their own unit, the rest is 'lib'."""
    bins = binaries()
    bin_files = {path: name for name, _, path in bins}
    fns = []
    for crate in CRATES:
        for path in rust_files(crate):
            text = open(path, encoding="utf-8").read()
            SOURCES[path] = text
            clean = sanitise(text)
            unit = bin_files.get(path, "lib")
            if path.endswith("/main.rs") and path not in bin_files:
                continue
            try:
                parse_items(path, crate, unit, clean, 0, len(clean), out=fns)
            except ValueError as e:
                errors.append(f"{os.path.relpath(path, ROOT)}: cannot be read: {e}")
    return bins, fns


CALL_TYPED = re.compile(r"\b([A-Z]\w*|Self)\s*::\s*([a-z_]\w*)")
CALL_METHOD = re.compile(r"\.\s*([a-z_]\w*)\s*(?:::\s*<[^>()]*>\s*)?(\()")
IDENT = re.compile(r"(?<![\w.])(?<!::)([a-z_]\w*)\b")
IDENT_AFTER_MODULE = re.compile(r"\b[a-z_]\w*\s*::\s*([a-z_]\w*)\b")
TYPE_NAME = re.compile(r"\b([A-Z]\w*)\b")


class Graph:
    """Reachability from one binary's main over the name-matched call graph."""

    def __init__(self, fns, unit, crate, visible):
        # Only the crates the binary's crate depends on; a type or free function is found by
        # name only in the crates the mentioning file's crate can see.
        self.visible = visible
        self.fns = [f for f in fns if f.unit in ("lib", unit) and f.crate in visible[crate]]
        self.methods = defaultdict(list)  # name -> methods
        self.by_type = defaultdict(list)  # (type, name) -> methods
        self.free = defaultdict(list)  # name -> free functions
        for f in self.fns:
            if f.owner:
                self.methods[f.name].append(f)
                self.by_type[(f.owner, f.name)].append(f)
            else:
                self.free[f.name].append(f)
        self.owner_types = {(f.crate, f.owner) for f in self.fns if f.owner}
        self.unit = unit

    def reach(self):
        main = [f for f in self.fns if f.unit == self.unit and f.name == "main" and not f.owner]
        if not main:
            raise LookupError(f"binary {self.unit}: no fn main")
        reached = {id(main[0]): main[0]}
        parent = {id(main[0]): None}
        live = set()
        pending_methods = []  # (caller, name) of `.name(` calls, resolved as types become live
        queue = [main[0]]

        def visit(callee, caller):
            if id(callee) not in reached:
                reached[id(callee)] = callee
                parent[id(callee)] = caller
                queue.append(callee)

        while queue:
            f = queue.pop()
            body = f.body
            sees = self.visible[f.crate]
            mentioned = {(f.crate, f.owner)} if f.owner else set()
            mentioned |= {(c, t) for t in TYPE_NAME.findall(body) for c in sees}
            for ct in mentioned & self.owner_types - live:
                live.add(ct)
                for caller, name, args, closure in pending_methods:
                    for g in self.methods.get(name, []):
                        if (g.crate, g.owner) == ct and arity_matches(g, args, closure):
                            visit(g, caller)
            for t, name in CALL_TYPED.findall(body):
                t = f.owner if t == "Self" else t
                for g in self.by_type.get((t, name), []):
                    if g.crate in sees:
                        visit(g, f)
            for m in CALL_METHOD.finditer(body):
                name = m.group(1)
                args, closure = call_args(body, m.start(2))
                # `.get_item()`, `.send()`: the SDK's fluent builders take no arguments; a
                # method of ours is matched by name and number of arguments.
                pending_methods.append((f, name, args, closure))
                for g in self.methods.get(name, []):
                    if (g.crate, g.owner) in live and arity_matches(g, args, closure):
                        visit(g, f)
            # Free functions: called (`f(`, `module::f(`), or passed as a value (`.map(f)`)
            # unless a local binding of the body has that name.
            called = set(re.findall(r"(?<![\w.])([a-z_]\w*)\s*\(", body)) | set(IDENT_AFTER_MODULE.findall(body))
            values = set(IDENT.findall(body)) - local_bindings(f)
            for name in called | values:
                for g in self.free.get(name, []):
                    if g.crate in sees:
                        visit(g, f)
        return list(reached.values()), parent


def local_bindings(f) -> set[str]:
    """Names a function body binds (let, patterns, closure and fn parameters, for loops)."""
    body = f.body
    names = set(re.findall(r"\blet\s+(?:mut\s+)?([a-z_]\w*)", body))
    for group in re.findall(r"\blet\s*\(([^)]*)\)", body) + re.findall(r"\|([^|]*)\|", body):
        names |= set(re.findall(r"\b([a-z_]\w*)\b", group))
    names |= set(re.findall(r"\b(?:Some|Ok|Err)\s*\(\s*(?:ref\s+)?(?:mut\s+)?([a-z_]\w*)\s*\)", body))
    names |= set(re.findall(r"\bfor\s+\(?\s*([a-z_]\w*)", body))
    names |= set(re.findall(r"\b([a-z_]\w*)\s*:", SOURCES_CLEAN.get((f.file, f.start), "")))
    return names


SOURCES_CLEAN: dict = {}


def call_path(f, parent, by_id):
    chain = []
    while f is not None:
        chain.append(f)
        f = parent.get(id(f))
    return " <- ".join(repr(x) for x in chain)


VAR_FIELD = re.compile(r"\b([a-z_]\w*)\s*:\s*var\(\s*\"([A-Z0-9_]+)\"\s*\)")


def config_fields():
    """{field path: environment variable}: `region`, or `tables.party` for a field of a group
    (`tables: Tables { party: var("PARTY_TABLE")?, .. }`)."""
    text = open(os.path.join(ROOT, CONFIG_RS), encoding="utf-8").read()
    fields, grouped = {}, []
    for g in re.finditer(r"\b([a-z_]\w*)\s*:\s*[A-Z]\w*\s*\{", text):
        end = matching(text, g.end() - 1)
        grouped.append((g.end(), end))
        for m in VAR_FIELD.finditer(text, g.end(), end):
            fields[f"{g.group(1)}.{m.group(1)}"] = m.group(2)
    for m in VAR_FIELD.finditer(text):
        if not any(a <= m.start() < b for a, b in grouped):
            fields[m.group(1)] = m.group(2)
    return fields


def config_uses(body, fields):
    """The configuration fields `body` names (`config.tables.party`, `config.region`)."""
    used = set()
    for m in re.finditer(r"\bconfig\s*\.\s*([a-z_]\w*)(?:\s*\.\s*([a-z_]\w*))?", body):
        path = f"{m.group(1)}.{m.group(2)}" if m.group(2) else m.group(1)
        if path in fields:
            used.add(path)
        elif m.group(1) in fields:
            used.add(m.group(1))
    return used


def field_kind(env):
    for suffix, service in FIELD_KINDS.items():
        if env.endswith(suffix):
            return service
    return None


def code_needs(bin_name, bin_crate, fns, fields, visible, errors):
    """{(action, (service, env var, suffix)): [why...]} for one binary."""
    graph = Graph(fns, bin_name, bin_crate, visible)
    reached, parent = graph.reach()
    reached_ids = {id(f) for f in reached}
    by_id = {id(f): f for f in reached}
    # Config fields named where each type is constructed (`Type::new(` / `Type {`), and by each
    # free function's callers.
    ctor_fields = defaultdict(set)
    callers = defaultdict(set)
    for f in reached:
        used = config_uses(f.body, fields)
        for t in set(TYPE_NAME.findall(f.body)):
            if re.search(rf"\b{t}\s*(::\s*new\b|\{{)", f.body):
                ctor_fields[t] |= used
        p = parent.get(id(f))
        if p is not None:
            callers[id(f)].add(id(p))
    # Every reachable caller of a free function (not only the first found).
    for f in reached:
        for name in set(IDENT.findall(f.body)):
            for g in graph.free.get(name, []):
                if id(g) in reached_ids:
                    callers[id(g)].add(id(f))

    def parts(f, seen=None):
        seen = seen or set()
        if id(f) in seen:
            return set()
        seen.add(id(f))
        found = {TRANSACTION_PARTS[p] for p in re.findall(r"TransactWriteItem\s*::\s*builder\s*\(\s*\)\s*\.\s*(put|update|delete|condition_check)\s*\(", f.body)}
        same_file = [g for g in graph.fns if g.file == f.file]
        for g in same_file:
            if g is not f and re.search(rf"(?<![\w])(?:Self\s*::\s*|self\s*\.\s*)?{g.name}\s*\(", f.body):
                found |= parts(g, seen)
        return found

    def resource_fields(f, service):
        if f.owner:
            fields_here = ctor_fields.get(f.owner, set())
        else:
            fields_here = set()
            for c in callers.get(id(f), ()):
                caller = by_id[c]
                fields_here |= config_uses(caller.body, fields)
        return sorted(fld for fld in fields_here if field_kind(fields[fld]) == service)

    needs = defaultdict(list)
    for f in reached:
        for m in re.finditer(r"\.\s*([a-z_]\w*)\s*\(\s*\)", f.body):
            op = m.group(1)
            if op not in SDK_OPERATIONS:
                continue
            service, action = SDK_OPERATIONS[op]
            flds = resource_fields(f, service)
            where = repr(f)
            if len(flds) != 1:
                errors.append(
                    f"binary {bin_name}: cannot tell which {service} resource .{op}() in {where} "
                    f"addresses (configuration fields found: {flds or 'none'}); name one "
                    f"configuration field set by a `*{next(k for k, v in FIELD_KINDS.items() if v == service)}` variable "
                    "where the type is constructed"
                )
                continue
            env = fields[flds[0]]
            suffix = ""
            if op == "query" and re.search(r"\.\s*(set_)?index_name\s*\(", f.body):
                suffix = "/index/*"
            if op in ("get_shard_iterator", "get_records"):
                suffix = "/stream/*"
            actions = [action] if action else sorted(parts(f))
            if not actions:
                errors.append(f"binary {bin_name}: a transaction in {where} has no part this check can read")
            for a in actions:
                how = f".{op}()" + (" part" if action is None else "")
                needs[(a, (service, env, suffix))].append(f"{how} in {call_path(f, parent, by_id)}")
    return needs


# ------------------------------------------------------------------------------ template


def transform(template_path):
    from cfnlint.decode import decode
    from cfnlint.template.transforms._sam import Transform

    template, matches = decode(template_path)
    if matches or template is None:
        sys.exit(f"{template_path}: cannot be parsed: {matches}")
    t = Transform(template_path, template, "eu-west-1")
    found = t.transform_template()
    if found:
        sys.exit(f"{template_path}: the SAM transform failed: {found}")
    return json.loads(json.dumps(t.template()))


def load_source(template_path):
    from cfnlint.decode import decode

    template, matches = decode(template_path)
    if matches or template is None:
        sys.exit(f"{template_path}: cannot be parsed: {matches}")
    return json.loads(json.dumps(template))


def resource_key(value, source, errors, where):
    """A statement resource or an environment value as (service, name, path)."""
    resources = source.get("Resources", {})
    if value == "*":
        return ("*", "*", "")
    if isinstance(value, dict) and ("Fn::GetAtt" in value or "Ref" in value):
        att = value.get("Fn::GetAtt") or [value.get("Ref"), "Ref"]
        if isinstance(att, str):
            att = att.split(".", 1)
        logical, attr = att[0], att[1]
        kind = resources.get(logical, {}).get("Type")
        if kind == "AWS::SQS::Queue" and attr in ("Arn", "Ref"):
            return ("sqs", logical, "")
        errors.append(f"{where}: resource {value!r} is not one this check reads")
        return ("?", json.dumps(value), "")
    text = value.get("Fn::Sub") if isinstance(value, dict) else value
    if isinstance(text, list):
        text = text[0]
    if not isinstance(text, str):
        errors.append(f"{where}: resource {value!r} is not one this check reads")
        return ("?", json.dumps(value), "")
    m = re.fullmatch(r"arn:\$\{AWS::Partition\}:dynamodb:\$\{AWS::Region\}:\$\{AWS::AccountId\}:table/([^/]+)(/.*)?", text)
    if m:
        return ("dynamodb", m.group(1), m.group(2) or "")
    m = re.fullmatch(r"arn:\$\{AWS::Partition\}:s3:::([^/]+)(/.*)?", text)
    if m:
        return ("s3", m.group(1), m.group(2) or "")
    errors.append(f"{where}: resource {text!r} is not one this check reads")
    return ("?", text, "")


def env_resource(service, env, function, source, errors):
    """The resource an environment variable names for a function, as (service, name)."""
    props = source["Resources"][function].get("Properties", {})
    variables = dict(source.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    variables.update(props.get("Environment", {}).get("Variables", {}) or {})
    if env not in variables:
        errors.append(f"{function}: its code addresses the {service} resource of {env}, which its environment does not set")
        return None
    value = variables[env]
    if service == "dynamodb" and isinstance(value, str):
        return ("dynamodb", value)
    if service == "s3":
        text = value.get("Fn::Sub") if isinstance(value, dict) else value
        return ("s3", text)
    if service == "sqs":
        key = resource_key(value, source, errors, f"{function} {env}")
        return ("sqs", key[1])
    errors.append(f"{function}: environment {env} = {value!r} is not a {service} resource this check reads")
    return None


def actions_of(statement):
    a = statement.get("Action", [])
    return [a] if isinstance(a, str) else list(a)


def tenant_condition_ok(condition):
    """Fn::If [IsTenantScoped, {op: {dynamodb:LeadingKeys: ...TenantId...}}, AWS::NoValue]."""
    if not (isinstance(condition, dict) and "Fn::If" in condition):
        return False
    name, scoped, otherwise = condition["Fn::If"]
    if name != "IsTenantScoped" or otherwise != {"Ref": "AWS::NoValue"} or not isinstance(scoped, dict):
        return False
    for op in scoped.values():
        if isinstance(op, dict) and "dynamodb:LeadingKeys" in op:
            return "TenantId" in json.dumps(op["dynamodb:LeadingKeys"])
    return False


def template_grants(function, transformed, source, errors):
    """{(action, (service, name, path))} the function's role allows on dynamodb/s3/sqs."""
    resources = transformed["Resources"]
    role = resources[function]["Properties"].get("Role")
    if not (isinstance(role, dict) and "Fn::GetAtt" in role):
        errors.append(f"{function}: its role is not a role of this template ({role!r})")
        return set()
    role_name = role["Fn::GetAtt"][0]
    props = resources[role_name]["Properties"]
    for arn in props.get("ManagedPolicyArns", []) or []:
        name = arn.rsplit("/", 1)[-1] if isinstance(arn, str) else arn
        if name not in HARMLESS_MANAGED_POLICIES:
            errors.append(
                f"{function}: managed policy {arn!r} on its role; this check cannot see its actions "
                "(grant what the code needs in the function's Policies statements instead)"
            )
    grants = set()
    for policy in props.get("Policies", []) or []:
        for st in policy.get("PolicyDocument", {}).get("Statement", []):
            if st.get("Effect") != "Allow":
                continue
            sid = st.get("Sid", "?")
            where = f"{function} statement {sid}"
            acts = [a for a in actions_of(st) if isinstance(a, str) and a.split(":")[0] in SERVICES]
            if not acts:
                continue
            res = st.get("Resource")
            res = res if isinstance(res, list) else [res]
            keys = [resource_key(r, source, errors, where) for r in res]
            for a in acts:
                if "*" in a:
                    errors.append(f"{where}: action {a} is a wildcard; name the actions the code calls")
            if any(k[0] == "dynamodb" and not k[2].startswith("/stream") for k in keys):
                if not tenant_condition_ok(st.get("Condition")):
                    errors.append(
                        f"{where}: a DynamoDB table statement without the tenant condition "
                        "(Fn::If [IsTenantScoped, {...: {dynamodb:LeadingKeys: ...TenantId...}}, AWS::NoValue])"
                    )
            for a in acts:
                for k in keys:
                    grants.add((a, k))
    return grants


def event_source_needs(function, transformed, source, errors):
    """What Lambda's poller does with the function's role, from the template's mappings."""
    needs = defaultdict(list)
    res = transformed["Resources"]
    for logical, r in res.items():
        if r.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        fn = r["Properties"].get("FunctionName")
        target = fn.get("Ref") if isinstance(fn, dict) else fn
        if target not in (function, f"{function}Aliaslive") and not (
            isinstance(target, str) and target.startswith(f"{function}Alias")
        ):
            continue
        src = r["Properties"]["EventSourceArn"]
        why = f"event source mapping {logical}"
        att = src.get("Fn::GetAtt") if isinstance(src, dict) else None
        ref = src.get("Ref") if isinstance(src, dict) else None
        if att and res.get(att[0], {}).get("Type") == "AWS::SQS::Queue":
            for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
                needs[(a, ("sqs", att[0], ""))].append(why)
        else:
            # A DynamoDB stream: the table's own (GetAtt T.StreamArn), or a parameter named
            # after the table resource (PartyTableStreamArn -> PartyTable).
            table = None
            if att and att[1] == "StreamArn":
                table = att[0]
            elif ref and ref.endswith("StreamArn"):
                table = ref[: -len("StreamArn")]
            name = source["Resources"].get(table, {}).get("Properties", {}).get("TableName")
            if not name:
                errors.append(f"{why}: cannot tell which table's stream {src!r} is")
                continue
            for a in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
                needs[(a, ("dynamodb", name, "/stream/*"))].append(why)
            needs[("dynamodb:ListStreams", ("*", "*", ""))].append(why)
        dest = r["Properties"].get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if dest:
            key = resource_key(dest, source, errors, why)
            needs[("sqs:SendMessage", key)].append(f"{why} (on-failure destination)")
    return needs


def show(key):
    service, name, path = key
    if service == "*":
        return "*"
    return {"dynamodb": "table/", "s3": "bucket ", "sqs": "queue "}.get(service, "") + name + path


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--template")
    p.add_argument("--transformed")
    p.add_argument("--explain", action="store_true")
    p.add_argument("--root")
    args = p.parse_args()
    global ROOT
    ROOT = os.path.abspath(args.root or ROOT)
    args.template = args.template or os.path.join(ROOT, "deploy", "template.yaml")

    errors = []
    source = load_source(args.template)
    transformed = json.load(open(args.transformed)) if args.transformed else transform(args.template)
    bins, fns = load_functions(errors)
    fields = config_fields()
    bin_names = {name for name, _, _ in bins}
    bin_crates = {name: crate for name, crate, _ in bins}
    visible = crate_dependencies()

    functions = {}
    for logical, r in source["Resources"].items():
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        uri = r.get("Properties", {}).get("CodeUri", "")
        m = re.fullmatch(r"\.\./target/lambda/([^/]+)/?", uri) if isinstance(uri, str) else None
        if not m or m.group(1) not in bin_names:
            errors.append(f"{logical}: CodeUri {uri!r} is not ../target/lambda/<one of {sorted(bin_names)}>/")
            continue
        functions[logical] = m.group(1)
    for name in sorted(bin_names - set(functions.values())):
        errors.append(f"binary {name}: no function of the template runs it")

    for function, bin_name in sorted(functions.items()):
        code = code_needs(bin_name, bin_crates[bin_name], fns, fields, visible, errors)
        needs = defaultdict(list)
        for (action, (service, env, suffix)), why in code.items():
            r = env_resource(service, env, function, source, errors)
            if r:
                needs[(action, (r[0], r[1], suffix))].extend(why)
        for k, why in event_source_needs(function, transformed, source, errors).items():
            needs[k].extend(why)
        grants = template_grants(function, transformed, source, errors)

        # Object actions are granted on the bucket's objects (bucket/path); compare by bucket.
        def norm(k):
            action, (service, name, path) = k
            if service == "s3" and action != "s3:ListBucket":
                path = ""
            return (action, (service, name, path))

        granted = {norm(g) for g in grants}
        needed = {norm(k): v for k, v in needs.items()}
        for k in sorted(set(needed) - granted):
            errors.append(
                f"{function} ({bin_name}): missing {k[0]} on {show(k[1])}, which it needs for "
                f"{needed[k][0]}"
            )
        for k in sorted(granted - set(needed)):
            errors.append(
                f"{function} ({bin_name}): grants {k[0]} on {show(k[1])}, which neither its code nor "
                "its event sources use: remove it"
            )
        print(f"   {function} ({bin_name}): {len(needed)} action-resource pairs needed, {len(granted)} granted")
        if args.explain:
            for k in sorted(needed):
                print(f"      {k[0]} on {show(k[1])}")
                for why in needed[k][:3]:
                    print(f"         {why}")

    for e in errors:
        print(f"iam-permissions: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
