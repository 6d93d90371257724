//! [`Name`]: the text of a model, provider, step, task, agent or operation in a call record.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A short, repetitive name (model, provider, step…): a string that is cheap to clone and to
/// share between threads.
///
/// Names the layer reads from spans are interned: the same text is the same immortal string,
/// so a clone copies a pointer and no thread writes to memory another one reads (a reference
/// count shared by the caller and the sink's thread would bounce between their caches on
/// every call). Past a bounded number of distinct names, and for names built with `From`, a
/// name is a reference-counted string instead. Either way it reads as a `&str`, compares,
/// hashes and orders as one, and serializes as one.
#[derive(Clone)]
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    Immortal(&'static str),
    Shared(Arc<str>),
}

impl Name {
    /// A name for text that lives for the whole program. Crate-private: two literals may
    /// share an address (one a prefix of the other), and addresses identify names here.
    pub(crate) const fn from_static(s: &'static str) -> Self {
        Self(Repr::Immortal(s))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Immortal(s) => s,
            Repr::Shared(s) => s,
        }
    }

    /// The address of the text: equal addresses, equal names. An interned name keeps its
    /// address for the life of the program; a shared one while a clone of it is alive.
    pub(crate) fn addr(&self) -> usize {
        self.as_str().as_ptr() as usize
    }

    /// Whether `a` and `b` are the same string in memory (not only equal text).
    pub(crate) fn same(a: &Self, b: &Self) -> bool {
        a.addr() == b.addr() && a.len() == b.len()
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        Self::same(self, other) || self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that maps keyed by names can be searched with a `&str`.
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Self(Repr::Shared(Arc::from(s)))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Self(Repr::Shared(Arc::from(s)))
    }
}

impl From<Arc<str>> for Name {
    fn from(s: Arc<str>) -> Self {
        Self(Repr::Shared(s))
    }
}

impl From<&Name> for Arc<str> {
    fn from(n: &Name) -> Self {
        match &n.0 {
            Repr::Immortal(s) => Arc::from(*s),
            Repr::Shared(s) => s.clone(),
        }
    }
}

impl From<&Name> for opentelemetry::StringValue {
    fn from(n: &Name) -> Self {
        // An immortal name becomes a static string value: no allocation, no count.
        match &n.0 {
            Repr::Immortal(s) => opentelemetry::StringValue::from(*s),
            Repr::Shared(s) => opentelemetry::StringValue::from(s.clone()),
        }
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <std::borrow::Cow<'de, str>>::deserialize(d).map(|s| Name::from(&*s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_hash_and_serialize_as_their_text() {
        use std::collections::HashSet;
        let a = Name::from_static("gpt-4o");
        let b = Name::from("gpt-4o");
        assert_eq!(a, b);
        assert!(!Name::same(&a, &b));
        assert!(Name::same(&a, &a.clone()));
        let set: HashSet<Name> = [a.clone()].into();
        assert!(set.contains("gpt-4o"));
        assert!(set.contains(&b));
        assert_eq!(Name::from("a").cmp(&Name::from_static("b")), Ordering::Less);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"gpt-4o\"");
        let back: Name = serde_json::from_str("\"gpt-\\u0034o\"").unwrap();
        assert_eq!(back, a);
        assert_eq!(format!("{a} {a:?}"), "gpt-4o \"gpt-4o\"");
    }
}
