//! One metric series per attribute set, built once and reused call after call.
//!
//! Building a call's attributes costs `KeyValue`s, the step/task cardinality caps and, in the
//! SDK, hashing the set for each of its four measurements. Calls repeat a handful of attribute
//! sets, and a call record's names are interned: the addresses of those strings name the
//! set, so a repeat costs one lookup of six words (or a comparison, when it repeats the call
//! before). With the `bound-instruments` feature the series holds the SDK's bound
//! instruments, and a measurement goes straight into its aggregator; without it, the series
//! keeps the attribute vectors ready for `record`.

use hashbrown::HashMap;
use opentelemetry::KeyValue;

use crate::name::Name;
use crate::record::CallRecord;

/// Series kept before the cache starts over (dropping a bound instrument releases it in the
/// SDK, so memory stays bounded whatever names calls carry).
const MAX_SERIES: usize = 1024;

/// The addresses of a record's names, in attribute order; 0 for an absent one.
type Key = [usize; 6];

fn addr(s: Option<&Name>) -> usize {
    s.map_or(0, Name::addr)
}

fn key(rec: &CallRecord) -> Key {
    [
        addr(Some(&rec.operation)),
        addr(rec.provider.as_ref()),
        addr(rec.request_model.as_ref()),
        addr(rec.model.as_ref()),
        addr(rec.step.as_ref()),
        addr(rec.task.as_ref()),
    ]
}

/// The record's names the key was made of, held so their addresses are never reused while
/// the key is in the cache.
type Pinned = [Option<Name>; 6];

fn pin(rec: &CallRecord) -> Pinned {
    [
        Some(rec.operation.clone()),
        rec.provider.clone(),
        rec.request_model.clone(),
        rec.model.clone(),
        rec.step.clone(),
        rec.task.clone(),
    ]
}

/// The instruments a series records into.
#[cfg(feature = "bound-instruments")]
mod handles {
    use opentelemetry::metrics::{BoundCounter, BoundHistogram};
    use opentelemetry::KeyValue;

    use super::super::Recorder;

    /// Bound to one attribute set: a measurement is an update of the SDK's aggregator. The
    /// cost and duration are bound at their first measurement: a bound instrument exports a
    /// point even if nothing is recorded, and a series may have no priced or no successful call.
    pub(super) struct Handles {
        cost: Option<BoundHistogram<f64>>,
        input: BoundHistogram<u64>,
        output: BoundHistogram<u64>,
        duration: Option<BoundHistogram<f64>>,
        upcoming: Option<[BoundCounter<u64>; 5]>,
    }

    impl Handles {
        pub(super) fn new(
            r: &Recorder,
            common: &[KeyValue],
            input: &[KeyValue],
            output: &[KeyValue],
        ) -> Self {
            Self {
                cost: None,
                input: r.tokens.bind(input),
                output: r.tokens.bind(output),
                duration: None,
                upcoming: r.upcoming.as_ref().map(|u| {
                    [
                        &u.input,
                        &u.output,
                        &u.cache_read,
                        &u.cache_write,
                        &u.reasoning,
                    ]
                    .map(|c| c.bind(common))
                }),
            }
        }

        pub(super) fn cost(&mut self, r: &Recorder, v: f64, common: &[KeyValue]) {
            self.cost
                .get_or_insert_with(|| r.cost.bind(common))
                .record(v);
        }
        pub(super) fn tokens(
            &mut self,
            _: &Recorder,
            input: u64,
            output: u64,
            _: &[KeyValue],
            _: &[KeyValue],
        ) {
            self.input.record(input);
            self.output.record(output);
        }
        pub(super) fn duration(&mut self, r: &Recorder, v: f64, common: &[KeyValue]) {
            self.duration
                .get_or_insert_with(|| r.duration.bind(common))
                .record(v);
        }
        pub(super) fn upcoming(&mut self, _: &Recorder, values: [u64; 5], _: &[KeyValue]) {
            if let Some(counters) = &self.upcoming {
                for (c, v) in counters.iter().zip(values) {
                    c.add(v);
                }
            }
        }
    }
}

/// Without bound instruments: each measurement passes the series' ready-made attributes.
#[cfg(not(feature = "bound-instruments"))]
mod handles {
    use opentelemetry::KeyValue;

    use super::super::Recorder;

    pub(super) struct Handles;

    impl Handles {
        pub(super) fn new(_: &Recorder, _: &[KeyValue], _: &[KeyValue], _: &[KeyValue]) -> Self {
            Self
        }
        pub(super) fn cost(&mut self, r: &Recorder, v: f64, common: &[KeyValue]) {
            r.cost.record(v, common);
        }
        pub(super) fn tokens(
            &self,
            r: &Recorder,
            input: u64,
            output: u64,
            i: &[KeyValue],
            o: &[KeyValue],
        ) {
            r.tokens.record(input, i);
            r.tokens.record(output, o);
        }
        pub(super) fn duration(&mut self, r: &Recorder, v: f64, common: &[KeyValue]) {
            r.duration.record(v, common);
        }
        pub(super) fn upcoming(&mut self, r: &Recorder, values: [u64; 5], common: &[KeyValue]) {
            if let Some(u) = &r.upcoming {
                let counters = [
                    &u.input,
                    &u.output,
                    &u.cache_read,
                    &u.cache_write,
                    &u.reasoning,
                ];
                for (c, v) in counters.into_iter().zip(values) {
                    c.add(v, common);
                }
            }
        }
    }
}

/// One attribute set's attributes and instruments.
pub(super) struct Series {
    _pinned: Pinned,
    /// The common attributes (what `gen_ai.usage.cost` and the duration carry).
    common: Vec<KeyValue>,
    input: Vec<KeyValue>,
    output: Vec<KeyValue>,
    handles: handles::Handles,
}

impl Series {
    /// Records one call into this series.
    pub(super) fn record(&mut self, r: &super::Recorder, rec: &CallRecord) {
        if let Some(c) = rec.cost_usd {
            self.handles.cost(r, c, &self.common);
        }
        let t = &rec.tokens;
        self.handles.upcoming(
            r,
            [t.input, t.output, t.cache_read, t.cache_write, t.reasoning],
            &self.common,
        );
        self.handles
            .tokens(r, t.input, t.output, &self.input, &self.output);
        let seconds = rec.latency_ms as f64 / 1000.0;
        match &rec.error {
            // Failed calls are few and their error types many: recorded unbound.
            Some(e) => {
                let mut attrs = self.common.clone();
                attrs.push(KeyValue::new(super::ERROR_TYPE, super::error_type(e)));
                r.duration.record(seconds, &attrs);
            }
            None => self.handles.duration(r, seconds, &self.common),
        }
    }
}

/// Series by the addresses of their names.
#[derive(Default)]
pub(super) struct SeriesCache {
    series: Vec<Series>,
    index: HashMap<Key, usize>,
    /// The last key looked up and its series: calls in a batch mostly repeat the attribute
    /// set of the call before, and comparing six words is cheaper than hashing them.
    last: Option<(Key, usize)>,
}

impl SeriesCache {
    /// The series of `rec`'s attribute set, built on first sight.
    pub(super) fn get(&mut self, r: &super::Recorder, rec: &CallRecord) -> &mut Series {
        let key = key(rec);
        let at = match self.last {
            Some((last, at)) if last == key => at,
            _ => self.find_or_build(r, rec, key),
        };
        self.last = Some((key, at));
        &mut self.series[at]
    }

    fn find_or_build(&mut self, r: &super::Recorder, rec: &CallRecord, key: Key) -> usize {
        if let Some(&at) = self.index.get(&key) {
            return at;
        }
        if self.series.len() >= MAX_SERIES {
            self.series.clear();
            self.index.clear();
        }
        let common = r.common_attributes(rec);
        let mut input = common.clone();
        input.push(KeyValue::new(super::TOKEN_TYPE, "input"));
        let mut output = common.clone();
        output.push(KeyValue::new(super::TOKEN_TYPE, "output"));
        self.series.push(Series {
            _pinned: pin(rec),
            handles: handles::Handles::new(r, &common, &input, &output),
            common,
            input,
            output,
        });
        let at = self.series.len() - 1;
        self.index.insert(key, at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{call_to, points, token_points, unworked_meter};

    #[test]
    fn series_stay_exact_when_the_cache_starts_over() {
        let (exporter, provider, _meter, recorder) = unworked_meter();
        // Names that are not interned: every call is a new key, so the series cache fills
        // and starts over several times.
        for i in 0..5_000u64 {
            recorder.record_all([&call_to(&format!("m{}", i % 50), i)]);
        }
        provider.force_flush().unwrap();
        // 0..5000 sum to 12,497,500; outputs are 1 each.
        assert_eq!(token_points(&exporter), (10_000, 12_497_500 + 5_000, 100));
        // No call is priced: no cost series, not even empty ones.
        assert_eq!(
            points(&exporter),
            [
                ("gen_ai.client.operation.duration".to_owned(), 50),
                ("gen_ai.client.token.usage".to_owned(), 100),
            ]
        );
    }

    #[test]
    fn a_repeated_attribute_set_reuses_its_series_and_a_new_one_gets_its_own() {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        let (exporter, provider, _meter, recorder) = unworked_meter();
        // Interned names, as the layer makes them: runs of the same set, then others.
        let models = ["a", "a", "a", "b", "b", "a", "c", "c", "a"];
        for (i, m) in models.iter().enumerate() {
            let mut rec = call_to(m, 10 + i as u64);
            rec.model = Some(crate::intern::intern(m));
            rec.provider = Some(crate::intern::intern("p"));
            recorder.record_all([&rec]);
        }
        provider.force_flush().unwrap();
        // Input tokens per model: a = 10+11+12+15+18, b = 13+14, c = 16+17.
        let mut input = std::collections::BTreeMap::new();
        let all = exporter.get_finished_metrics().unwrap();
        for sm in all.last().unwrap().scope_metrics() {
            for m in sm.metrics() {
                if let AggregatedMetrics::U64(MetricData::Histogram(h)) = m.data() {
                    for p in h.data_points() {
                        let attr = |k: &str| {
                            p.attributes()
                                .find(|kv| kv.key.as_str() == k)
                                .map(|kv| kv.value.to_string())
                        };
                        if attr("gen_ai.token.type").as_deref() == Some("input") {
                            let model = attr("gen_ai.response.model").unwrap();
                            input.insert(model, (p.count(), p.sum()));
                        }
                    }
                }
            }
        }
        let expected = [("a", (5, 66)), ("b", (2, 27)), ("c", (2, 33))];
        let expected: std::collections::BTreeMap<String, (u64, u64)> = expected
            .into_iter()
            .map(|(m, v)| (m.to_owned(), v))
            .collect();
        assert_eq!(input, expected);
    }
}
