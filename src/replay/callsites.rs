//! Callsites made at run time for replayed spans: `tracing` wants `'static` metadata, so each
//! span name and set of field names the replay meets is made once, and kept.
//!
//! Both are bounded: names are only those the layer reads (its own table, the builder's
//! attributes) and the few span names that mean something to it; past [`MAX_CALLSITES`]
//! sets of fields, a span is replayed with none of them (and counted).

use std::sync::{Mutex, OnceLock};

use hashbrown::HashMap;
use tracing_core::callsite::Callsite;
use tracing_core::field::FieldSet;
use tracing_core::subscriber::Interest;
use tracing_core::{Kind, Level, Metadata};

/// At most this many distinct field names are made `'static`.
pub(super) const MAX_NAMES: usize = 4096;
/// At most this many distinct (span name, field names) callsites are made.
pub(super) const MAX_CALLSITES: usize = 4096;

/// The target of replayed spans.
pub(crate) const TARGET: &str = "tracing_llm_usage::replay";

struct DynCallsite {
    meta: OnceLock<Metadata<'static>>,
}

impl Callsite for DynCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        self.meta.get().unwrap_or(&EMPTY_META)
    }
}

struct EmptyCallsite;

impl Callsite for EmptyCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &EMPTY_META
    }
}

static EMPTY_CALLSITE: EmptyCallsite = EmptyCallsite;
static EMPTY_META: Metadata<'static> = Metadata::new(
    "span",
    TARGET,
    Level::INFO,
    None,
    None,
    None,
    FieldSet::new(&[], tracing_core::identify_callsite!(&EMPTY_CALLSITE)),
    Kind::SPAN,
);

/// Field names and callsites made so far.
#[derive(Default)]
pub(super) struct Callsites {
    names: HashMap<Box<str>, &'static str>,
    sites: HashMap<(&'static str, Box<[&'static str]>), &'static Metadata<'static>>,
}

/// The process's callsites: shared by every replayer, since what is leaked is leaked once.
pub(super) fn callsites() -> &'static Mutex<Callsites> {
    static CALLSITES: OnceLock<Mutex<Callsites>> = OnceLock::new();
    CALLSITES.get_or_init(|| Mutex::new(Callsites::default()))
}

impl Callsites {
    /// `name` as a `'static` string, unless the table is full.
    pub(super) fn name(&mut self, name: &str) -> Option<&'static str> {
        if let Some(&n) = self.names.get(name) {
            return Some(n);
        }
        if self.names.len() >= MAX_NAMES {
            return None;
        }
        let leaked: &'static str = Box::leak(Box::from(name));
        self.names.insert(Box::from(name), leaked);
        Some(leaked)
    }

    /// The metadata of a span named `span_name` with these fields (in this order), unless
    /// the table is full.
    pub(super) fn metadata(
        &mut self,
        span_name: &'static str,
        fields: &[&'static str],
    ) -> Option<&'static Metadata<'static>> {
        if let Some(&m) = self.sites.get(&(span_name, Box::from(fields))) {
            return Some(m);
        }
        if self.sites.len() >= MAX_CALLSITES {
            return None;
        }
        let names: &'static [&'static str] = Box::leak(Box::from(fields));
        let site: &'static DynCallsite = Box::leak(Box::new(DynCallsite {
            meta: OnceLock::new(),
        }));
        let meta = Metadata::new(
            span_name,
            TARGET,
            Level::INFO,
            None,
            None,
            None,
            FieldSet::new(names, tracing_core::identify_callsite!(site)),
            Kind::SPAN,
        );
        let _ = site.meta.set(meta);
        let meta = site.meta.get()?;
        self.sites.insert((span_name, Box::from(fields)), meta);
        Some(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callsite_is_made_once_per_name_and_fields() {
        let mut c = Callsites::default();
        let a = c.name("tokens.input").unwrap();
        assert!(std::ptr::eq(a, c.name("tokens.input").unwrap()));
        let m1 = c.metadata("llm_call", &[a]).unwrap();
        let m2 = c.metadata("llm_call", &[a]).unwrap();
        assert!(std::ptr::eq(m1, m2));
        assert_eq!(m1.name(), "llm_call");
        assert_eq!(
            m1.fields().iter().map(|f| f.name()).collect::<Vec<_>>(),
            ["tokens.input"]
        );
        assert!(!std::ptr::eq(m1, c.metadata("span", &[a]).unwrap()));
    }
}
