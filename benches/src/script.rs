//! The scripting peer: the default merge written in Rhai (`merge.rhai`), run through the same
//! harness as the WASM policy. A call converts both versions into Rhai values (the script's
//! side of the boundary, like lowering into a component), runs the script and converts its
//! answer back into a [`Resolution`]; all of it is timed.

use policy_types::{
    Context, Dot, Element, Entry, EntryRef, Field, FieldValue, Hlc, MergedElements, MergedField,
    MergedParty, MergedValue, PartyVersion, Resolution, Side,
};
use rhai::{AST, Array, CallFnOptions, Dynamic, Engine, Map, Scope};

/// The script's source.
pub const SCRIPT: &str = include_str!("merge.rhai");

/// The Rhai engine with the compiled script.
pub struct ScriptPolicy {
    engine: Engine,
    ast: AST,
}

impl std::fmt::Debug for ScriptPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptPolicy").finish_non_exhaustive()
    }
}

impl Default for ScriptPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptPolicy {
    /// Compiles the script once. The operation budget plays the part of the WASM deadline
    /// (data-size limits are left off: Rhai checks them by walking the values on every change,
    /// which would slow the script further).
    pub fn new() -> Self {
        let mut engine = Engine::new();
        engine.set_max_operations(50_000_000);
        // The merge's loops nest deeper than Rhai's default expression depth allows.
        engine.set_max_expr_depths(256, 256);
        engine.set_optimization_level(rhai::OptimizationLevel::Full);
        let ast = engine.compile(SCRIPT).expect("the merge script compiles");
        ScriptPolicy { engine, ast }
    }

    /// Resolves like a policy's `resolve`: conversion in, script, conversion out.
    pub fn call(
        &self,
        ctx: &Context,
        local: &PartyVersion,
        remote: &PartyVersion,
    ) -> Result<Resolution, String> {
        let args = (context(ctx), party(local), party(remote));
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(false);
        let out: Dynamic = self
            .engine
            .call_fn_with_options(options, &mut Scope::new(), &self.ast, "resolve", args)
            .map_err(|e| format!("the script failed: {e}"))?;
        resolution(out)
    }
}

/// A stamp as one string that sorts like the stamp: (wall ms, logical, region).
pub fn stamp_key(h: &Hlc) -> String {
    format!("{:020}.{:010}.{}", h.wall_ms, h.logical, h.region)
}

/// A Rhai object map of `members`.
fn object<const N: usize>(members: [(&str, Dynamic); N]) -> Dynamic {
    let m: Map = members
        .into_iter()
        .map(|(name, value)| (name.into(), value))
        .collect();
    m.into()
}

fn context(ctx: &Context) -> Dynamic {
    object([
        ("tenant", ctx.tenant.as_str().into()),
        ("region", ctx.resolving_region.as_str().into()),
        ("relation", ctx.relation.as_str().into()),
        ("config", ctx.config.as_str().into()),
    ])
}

fn party(v: &PartyVersion) -> Dynamic {
    let vv: Map = v
        .version_vector
        .iter()
        .map(|d| {
            (
                d.region.as_str().into(),
                Dynamic::from_int(d.counter as i64),
            )
        })
        .collect();
    let tombstone = v
        .tombstone
        .as_ref()
        .map_or(Dynamic::UNIT, |t| stamp_key(t).into());
    let fields: Array = v.fields.iter().map(field).collect();
    object([
        ("tenant", v.tenant.as_str().into()),
        ("party_id", v.party_id.as_str().into()),
        ("resource", v.resource_type.as_str().into()),
        ("origin", v.origin_region.as_str().into()),
        ("vv", vv.into()),
        ("tombstone", tombstone),
        ("fields", fields.into()),
    ])
}

fn field(f: &Field) -> Dynamic {
    let (name, stamp) = (f.name.as_str().into(), stamp_key(&f.stamp).into());
    match &f.value {
        FieldValue::Json(text) => object([
            ("name", name),
            ("stamp", stamp),
            ("kind", Dynamic::from_int(0)),
            ("json", text.as_str().into()),
        ]),
        FieldValue::Elements(elements) => {
            let els: Array = elements.iter().map(element).collect();
            object([
                ("name", name),
                ("stamp", stamp),
                ("kind", Dynamic::from_int(1)),
                ("els", els.into()),
            ])
        }
    }
}

fn element(e: &Element) -> Dynamic {
    let entries: Array = e.entries.iter().map(entry).collect();
    object([("key", e.key.as_str().into()), ("entries", entries.into())])
}

fn entry(n: &Entry) -> Dynamic {
    object([
        ("value", n.value.as_str().into()),
        ("stamp", stamp_key(&n.stamp).into()),
        ("dr", n.dot.region.as_str().into()),
        ("dc", Dynamic::from_int(n.dot.counter as i64)),
        ("position", Dynamic::from_int(i64::from(n.position))),
    ])
}

fn text(d: Dynamic, what: &str) -> Result<String, String> {
    d.into_immutable_string()
        .map(|s| s.to_string())
        .map_err(|t| format!("{what}: expected a string, found {t}"))
}

fn int(d: &Dynamic, what: &str) -> Result<i64, String> {
    d.as_int()
        .map_err(|t| format!("{what}: expected an integer, found {t}"))
}

fn array(d: Dynamic, what: &str) -> Result<Array, String> {
    d.into_array()
        .map_err(|t| format!("{what}: expected an array, found {t}"))
}

fn side(d: Dynamic) -> Result<Side, String> {
    match text(d, "side")?.as_str() {
        "local" => Ok(Side::Local),
        "remote" => Ok(Side::Remote),
        other => Err(format!("side: expected local or remote, found {other:?}")),
    }
}

fn resolution(out: Dynamic) -> Result<Resolution, String> {
    let mut m = out
        .try_cast::<Map>()
        .ok_or("the script must return a map")?;
    let mut take = |k: &str| m.remove(k).unwrap_or(Dynamic::UNIT);
    let kind = text(take("kind"), "kind")?;
    Ok(match kind.as_str() {
        "keep-local" => Resolution::KeepLocal,
        "take-remote" => Resolution::TakeRemote,
        "reject" => Resolution::Reject(text(take("reason"), "reason")?),
        "merged" => {
            let tenant = text(take("tenant"), "tenant")?;
            let party_id = text(take("party_id"), "party_id")?;
            let vv = take("vv").try_cast::<Map>().ok_or("vv must be a map")?;
            let version_vector = vv
                .into_iter()
                .map(|(region, c)| {
                    Ok(Dot {
                        region: region.to_string(),
                        counter: int(&c, "counter")? as u64,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let mut fields = Vec::new();
            for f in array(take("fields"), "fields")? {
                let mut f = array(f, "field")?.into_iter();
                let mut next = || f.next().unwrap_or(Dynamic::UNIT);
                let name = text(next(), "field name")?;
                let value = match text(next(), "field kind")?.as_str() {
                    "copy" => MergedValue::Copy(side(next())?),
                    "elements" => {
                        let stamp_from = side(next())?;
                        let mut elements = Vec::new();
                        for element in array(next(), "elements")? {
                            let mut refs = Vec::new();
                            for r in array(element, "element")? {
                                let mut r = array(r, "entry reference")?.into_iter();
                                let mut next = || r.next().unwrap_or(Dynamic::UNIT);
                                refs.push(EntryRef {
                                    side: side(next())?,
                                    element: int(&next(), "element index")? as u32,
                                    entry: int(&next(), "entry index")? as u32,
                                });
                            }
                            elements.push(refs);
                        }
                        MergedValue::Elements(MergedElements {
                            stamp_from,
                            elements,
                        })
                    }
                    other => return Err(format!("unknown field kind {other:?}")),
                };
                fields.push(MergedField { name, value });
            }
            Resolution::Merged(MergedParty {
                tenant,
                party_id,
                version_vector,
                fields,
                tombstone: None,
            })
        }
        other => return Err(format!("unknown resolution kind {other:?}")),
    })
}
