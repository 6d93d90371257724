//! Attributes: the span fields a user names to attribute spend to (a tenant, a user, a
//! feature, a prompt version), read from a call span or the nearest ancestor that has them.
//!
//! The builder's keys are the names asked for ([`crate::UsageLayerBuilder::attributes`]); a span
//! keeps the values it recorded; a call's [`Attributes`] are what its line, its run, the
//! budgets and the metrics see. Nothing is read unless named: attributes can be personal data.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use tracing_core::Metadata;

use crate::name::Name;

/// Characters an attribute value keeps; a longer one is cut, and the call's line says so.
pub const MAX_VALUE_CHARS: usize = 256;

/// One attribute's value, as recorded: text, a number or a boolean.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AttributeValue {
    /// Text (at most [`MAX_VALUE_CHARS`] characters).
    Str(Name),
    /// A negative whole number.
    Int(i64),
    /// A non-negative whole number.
    UInt(u64),
    /// A finite number with a fraction.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for AttributeValue {
    /// The value as text: a string as it is, a number or boolean as JSON writes it (the text
    /// `->>` gives in PostgreSQL, and the key `by` groups under).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeValue::Str(s) => f.write_str(s),
            AttributeValue::Int(v) => v.fmt(f),
            AttributeValue::UInt(v) => v.fmt(f),
            AttributeValue::Float(v) => match serde_json::Number::from_f64(*v) {
                Some(n) => n.fmt(f),
                None => v.fmt(f),
            },
            AttributeValue::Bool(v) => v.fmt(f),
        }
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AttributeValue::Str(v) => s.serialize_str(v),
            AttributeValue::Int(v) => s.serialize_i64(*v),
            AttributeValue::UInt(v) => s.serialize_u64(*v),
            AttributeValue::Float(v) => s.serialize_f64(*v),
            AttributeValue::Bool(v) => s.serialize_bool(*v),
        }
    }
}

impl<'de> serde::Deserialize<'de> for AttributeValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = AttributeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AttributeValue::Str(Name::from(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(match u64::try_from(v) {
                    Ok(u) => AttributeValue::UInt(u),
                    Err(_) => AttributeValue::Int(v),
                })
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(AttributeValue::UInt(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(AttributeValue::Float(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(AttributeValue::Bool(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// One attribute and its value.
type Pair = (Name, AttributeValue);

/// A call's or a run's attributes, in the order the builder names them; only those with a
/// value. Written as a JSON object (`{"tenant":"acme","prompt.version":"v3"}`), left out of
/// the line when empty.
///
/// A set is made once and shared: the calls of a run, or of a tenant, carry the same one, so
/// a call's attributes cost neither an allocation nor a reference count that the caller's
/// thread and the writer's would both write (as [`Name`]s are interned).
#[derive(Clone, Debug, Default)]
pub struct Attributes(Set);

#[derive(Clone, Debug, Default)]
enum Set {
    #[default]
    Empty,
    /// Made immortal, within [`MAX_SETS`] sets.
    Immortal(&'static [Pair]),
    /// Past that, counted.
    Shared(Arc<[Pair]>),
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Self) -> bool {
        self.pairs() == other.pairs()
    }
}

impl Attributes {
    /// Attributes from (name, value) pairs.
    pub(crate) fn from_pairs(pairs: Vec<Pair>) -> Self {
        if pairs.is_empty() {
            Self(Set::Empty)
        } else {
            Self(Set::Shared(Arc::from(pairs)))
        }
    }

    fn pairs(&self) -> &[Pair] {
        match &self.0 {
            Set::Empty => &[],
            Set::Immortal(p) => p,
            Set::Shared(p) => p,
        }
    }

    /// Whether no attribute has a value.
    pub fn is_empty(&self) -> bool {
        self.pairs().is_empty()
    }

    /// The value of `key`, if it has one.
    pub fn get(&self, key: &str) -> Option<&AttributeValue> {
        self.pairs()
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| v)
    }

    /// The (name, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AttributeValue)> {
        self.pairs().iter().map(|(k, v)| (&**k, v))
    }

    /// The address of an immortal set: the same for every call that carries it.
    pub(crate) fn immortal_id(&self) -> Option<usize> {
        match &self.0 {
            Set::Immortal(p) => Some(p.as_ptr() as usize),
            _ => None,
        }
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.pairs().len()))?;
        for (k, v) in self.pairs() {
            map.serialize_entry(&**k, v)?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs: Vec<(String, AttributeValue)> = crate::format::decode::ordered_map(d)?;
        Ok(Attributes::from_pairs(
            pairs
                .into_iter()
                .map(|(k, v)| (Name::from(k.as_str()), v))
                .collect(),
        ))
    }
}

/// The attribute names a layer reads, fixed when it is built.
#[derive(Debug, Default)]
pub(crate) struct AttributeKeys {
    /// Tells this set from another layer's in the per-thread callsite cache (0: none).
    id: u32,
    names: Box<[Name]>,
}

/// Field names the layer reads for itself, which cannot also be attributes.
fn reserved(name: &str) -> bool {
    matches!(
        name,
        "run_id" | "step" | "task" | "agent" | "gen_ai.agent.name" | "error" | "error.type"
    ) || (crate::fields::is_call_field(name) && !name.starts_with("prompt."))
}

impl AttributeKeys {
    /// The keys named by the builder.
    ///
    /// # Errors
    ///
    /// A name that is empty, given twice, or a field the layer reads for itself.
    pub(crate) fn new(names: &[String]) -> Result<Self, String> {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let mut out: Vec<Name> = Vec::with_capacity(names.len());
        for n in names {
            if n.is_empty() {
                return Err("an attribute name is empty".into());
            }
            if reserved(n) {
                return Err(format!(
                    "\"{n}\" is a field the layer reads for itself (reports group by it \
                     already); it cannot also be an attribute"
                ));
            }
            if out.iter().any(|o| **o == **n) {
                return Err(format!("attribute \"{n}\" is named twice"));
            }
            out.push(crate::intern::intern(n));
        }
        if out.len() > 64 {
            return Err("more than 64 attributes".into());
        }
        Ok(Self {
            id: if out.is_empty() {
                0
            } else {
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
            names: out.into_boxed_slice(),
        })
    }

    /// Whether no attribute is read.
    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The names, in order.
    pub(crate) fn names(&self) -> &[Name] {
        &self.names
    }

    /// Where `name` is among the keys.
    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        if self.names.is_empty() {
            return None;
        }
        self.names.iter().position(|n| **n == *name)
    }

    /// Whether a callsite declares one of the keys (cached per thread and callsite).
    pub(crate) fn declared_by(&self, meta: &Metadata<'_>) -> bool {
        if self.names.is_empty() {
            return false;
        }
        const SLOTS: usize = 128;
        thread_local! {
            static SEEN: [Cell<(usize, u32, bool)>; SLOTS] =
                const { [const { Cell::new((0, 0, false)) }; SLOTS] };
        }
        let key = meta as *const Metadata<'_> as usize;
        let slot = (key >> 4) % SLOTS;
        let cached = SEEN
            .try_with(|seen| {
                let (k, id, declares) = seen[slot].get();
                (k == key && id == self.id).then_some(declares)
            })
            .ok()
            .flatten();
        if let Some(declares) = cached {
            return declares;
        }
        let declares = meta.fields().iter().any(|f| self.index(f.name()).is_some());
        let _ = SEEN.try_with(|seen| seen[slot].set((key, self.id, declares)));
        declares
    }
}

/// One recorded value, and the length it had before it was cut.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub(crate) value: AttributeValue,
    pub(crate) cut_from: Option<usize>,
}

/// The values a span recorded, by key index (allocated at its first value).
#[derive(Debug, Default)]
pub(crate) struct Slots(Option<Box<[Option<Slot>]>>);

impl Slots {
    /// Records the value of key `i` (of `n`).
    pub(crate) fn set(&mut self, i: usize, n: usize, value: AttributeValue) {
        let (value, cut_from) = cut(value);
        let slots = self
            .0
            .get_or_insert_with(|| vec![None; n].into_boxed_slice());
        if let Some(s) = slots.get_mut(i) {
            *s = Some(Slot { value, cut_from });
        }
    }
}

/// A text value past [`MAX_VALUE_CHARS`] characters is cut there.
fn cut(value: AttributeValue) -> (AttributeValue, Option<usize>) {
    match value {
        AttributeValue::Str(s) if s.len() > MAX_VALUE_CHARS => {
            let chars = s.chars().count();
            if chars <= MAX_VALUE_CHARS {
                return (AttributeValue::Str(s), None);
            }
            let end = s
                .char_indices()
                .nth(MAX_VALUE_CHARS)
                .map_or(s.len(), |(i, _)| i);
            (
                AttributeValue::Str(crate::intern::intern_value(&s[..end])),
                Some(chars),
            )
        }
        other => (other, None),
    }
}

/// Gathers a call's attributes: its own values first, then each ancestor's for the keys still
/// missing. No allocation but the result's, made at the first value found.
pub(crate) struct Gather<'k> {
    keys: &'k AttributeKeys,
    /// Bit `i`: key `i` has its value.
    found: u64,
    all: u64,
    out: smallvec::SmallVec<[Pair; 4]>,
    /// Warnings for values that were cut.
    cut: Vec<String>,
}

impl<'k> Gather<'k> {
    pub(crate) fn new(keys: &'k AttributeKeys) -> Self {
        let n = keys.len().min(64);
        Self {
            keys,
            found: 0,
            all: if n == 64 { u64::MAX } else { (1u64 << n) - 1 },
            out: smallvec::SmallVec::new(),
            cut: Vec::new(),
        }
    }

    /// Whether every key has a value.
    pub(crate) fn done(&self) -> bool {
        self.found == self.all
    }

    /// Takes the values of `slots` for the keys still missing.
    pub(crate) fn take_from(&mut self, slots: &Slots) {
        let Some(values) = &slots.0 else {
            return;
        };
        if self.done() {
            return;
        }
        for (i, slot) in values.iter().enumerate().take(64) {
            let bit = 1u64 << i;
            let Some(slot) = slot else { continue };
            if self.found & bit != 0 {
                continue;
            }
            // In the builder's order: after the values of the keys before this one.
            let at = (self.found & (bit - 1)).count_ones() as usize;
            self.found |= bit;
            let name = &self.keys.names[i];
            if let Some(chars) = slot.cut_from {
                self.cut.push(format!(
                    "attribute {name}: a value of {chars} characters was cut to {MAX_VALUE_CHARS}"
                ));
            }
            self.out.insert(at, (name.clone(), slot.value.clone()));
        }
    }

    /// The attributes in the builder's order, and a warning per value that was cut.
    pub(crate) fn finish(mut self, warnings: &mut Vec<String>) -> Attributes {
        warnings.append(&mut self.cut);
        if self.out.is_empty() {
            return Attributes(Set::Empty);
        }
        Attributes(shared(&self.out))
    }
}

/// Attribute sets made immortal, at most (past that, a set is a counted one per call).
const MAX_SETS: usize = 4096;
/// Pairs held by the immortal sets, at most.
const MAX_SET_PAIRS: usize = 64 * 1024;
const SET_SLOTS: usize = 64;

thread_local! {
    /// The immortal sets this thread used lately, by hash.
    static SETS: [Cell<Option<&'static [Pair]>>; SET_SLOTS] =
        const { [const { Cell::new(None) }; SET_SLOTS] };
}

/// The immortal sets by hash, and the pairs they hold.
type SetTable = (
    Option<hashbrown::HashMap<u64, Vec<&'static [Pair]>>>,
    usize,
    usize,
);
static IMMORTAL_SETS: std::sync::Mutex<SetTable> = std::sync::Mutex::new((None, 0, 0));

fn set_hash(pairs: &[Pair]) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = hashbrown::DefaultHashBuilder::default().build_hasher();
    for (k, v) in pairs {
        k.as_str().hash(&mut h);
        match v {
            AttributeValue::Str(s) => (0u8, s.as_str()).hash(&mut h),
            AttributeValue::Int(i) => (1u8, *i).hash(&mut h),
            AttributeValue::UInt(u) => (2u8, *u).hash(&mut h),
            AttributeValue::Float(f) => (3u8, f.to_bits()).hash(&mut h),
            AttributeValue::Bool(b) => (4u8, *b).hash(&mut h),
        }
    }
    h.finish()
}

/// The process-wide immortal set equal to `pairs`, while the table has room.
fn immortal_set(hash: u64, pairs: &[Pair]) -> Option<&'static [Pair]> {
    let mut table = IMMORTAL_SETS.lock().ok()?;
    let (sets, count, held) = &mut *table;
    let sets = sets.get_or_insert_with(hashbrown::HashMap::new);
    let same = sets.entry(hash).or_default();
    if let Some(known) = same.iter().find(|s| **s == pairs) {
        return Some(known);
    }
    if *count >= MAX_SETS || *held + pairs.len() > MAX_SET_PAIRS {
        return None;
    }
    // Leaked on purpose, within the bounds above: an immortal set needs no count.
    let leaked: &'static [Pair] = Box::leak(pairs.to_vec().into_boxed_slice());
    same.push(leaked);
    *count += 1;
    *held += pairs.len();
    Some(leaked)
}

/// `pairs` as a shared set: an immortal one when there is room (the same for every call that
/// carries these values), else a counted one.
fn shared(pairs: &[Pair]) -> Set {
    let hash = set_hash(pairs);
    let slot = (hash as usize) % SET_SLOTS;
    let cached = SETS
        .try_with(|sets| {
            let cell = &sets[slot];
            match cell.get() {
                Some(hit) if hit == pairs => Some(hit),
                _ => {
                    let fresh = immortal_set(hash, pairs);
                    if fresh.is_some() {
                        cell.set(fresh);
                    }
                    fresh
                }
            }
        })
        .unwrap_or_else(|_| immortal_set(hash, pairs));
    match cached {
        Some(set) => Set::Immortal(set),
        None => Set::Shared(Arc::from(pairs)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        let long: String = "é".repeat(300);
        let (v, cut_from) = cut(AttributeValue::Str(Name::from(long.as_str())));
        assert_eq!(cut_from, Some(300));
        assert_eq!(v.to_string().chars().count(), MAX_VALUE_CHARS);
        // 200 two-byte characters: 400 bytes but not too long.
        let (_, cut_from) = cut(AttributeValue::Str(Name::from("é".repeat(200).as_str())));
        assert_eq!(cut_from, None);
    }

    #[test]
    fn values_read_as_json_writes_them() {
        assert_eq!(AttributeValue::Float(1.0).to_string(), "1.0");
        assert_eq!(AttributeValue::Float(0.25).to_string(), "0.25");
        assert_eq!(AttributeValue::Int(-3).to_string(), "-3");
        assert_eq!(AttributeValue::Bool(true).to_string(), "true");
    }

    #[test]
    fn names_the_layer_reads_are_refused() {
        for n in ["step", "run_id", "model", "gen_ai.usage.input_tokens", ""] {
            assert!(AttributeKeys::new(&[n.to_owned()]).is_err(), "{n}");
        }
        assert!(AttributeKeys::new(&["tenant".into(), "tenant".into()]).is_err());
        let keys = AttributeKeys::new(&["tenant".into(), "prompt.version".into()]).unwrap();
        assert_eq!(keys.index("prompt.version"), Some(1));
    }
}
