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

use super::MAX_METRIC_ATTRIBUTES;
use crate::name::Name;
use crate::record::CallRecord;

/// Series kept before the cache starts over (dropping a bound instrument releases it in the
/// SDK, so memory stays bounded whatever names calls carry).
const MAX_SERIES: usize = 1024;

/// The addresses of a record's names, in attribute order, then of its metric attributes'
/// values; 0 for an absent one.
type Key = [usize; 6 + MAX_METRIC_ATTRIBUTES];

/// The values of the metric attributes (see [`super::Recorder::attribute_values`]).
type Values = [Option<Name>; MAX_METRIC_ATTRIBUTES];

fn addr(s: Option<&Name>) -> usize {
    s.map_or(0, Name::addr)
}

fn key(rec: &CallRecord, values: &Values) -> Key {
    let mut k = [0; 6 + MAX_METRIC_ATTRIBUTES];
    k[0] = addr(Some(&rec.operation));
    k[1] = addr(rec.provider.as_ref());
    k[2] = addr(rec.request_model.as_ref());
    k[3] = addr(rec.model.as_ref());
    k[4] = addr(rec.step.as_ref());
    k[5] = addr(rec.task.as_ref());
    for (slot, v) in k[6..].iter_mut().zip(values) {
        *slot = addr(v.as_ref());
    }
    k
}

/// The names the key was made of, held so their addresses are never reused while the key
/// is in the cache.
type Pinned = ([Option<Name>; 6], Values);

fn pin(rec: &CallRecord, values: Values) -> Pinned {
    (
        [
            Some(rec.operation.clone()),
            rec.provider.clone(),
            rec.request_model.clone(),
            rec.model.clone(),
            rec.step.clone(),
            rec.task.clone(),
        ],
        values,
    )
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
            unknown: &[KeyValue],
            input: &[KeyValue],
            output: &[KeyValue],
        ) -> Self {
            Self {
                cost: None,
                input: r.tokens.bind(input),
                output: r.tokens.bind(output),
                duration: None,
                upcoming: r
                    .upcoming
                    .as_ref()
                    .map(|u| u.counters().map(|c| c.bind(unknown))),
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
        /// Adds to one usage counter under the `unknown` modality.
        pub(super) fn unknown(&mut self, _: &Recorder, counter: usize, v: u64, _: &[KeyValue]) {
            if let Some(counters) = &self.upcoming {
                counters[counter].add(v);
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
        /// Adds to one usage counter under the `unknown` modality.
        pub(super) fn unknown(
            &mut self,
            r: &Recorder,
            counter: usize,
            v: u64,
            unknown: &[KeyValue],
        ) {
            if let Some(u) = &r.upcoming {
                u.counters()[counter].add(v, unknown);
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
    /// The common attributes with each `gen_ai.token.modality` (text, image, audio, unknown),
    /// when the latest instruments are on.
    modal: Vec<Vec<KeyValue>>,
    handles: handles::Handles,
}

/// Where the `unknown` modality's attributes are in [`Series::modal`].
const UNKNOWN: usize = 3;

impl Series {
    /// Records one call into this series.
    pub(super) fn record(&mut self, r: &super::Recorder, rec: &CallRecord) {
        if let Some(c) = rec.cost_usd {
            self.handles.cost(r, c, &self.common);
        }
        let t = &rec.tokens;
        // A call without usage has unknown tokens, not zero: only its duration is recorded.
        if rec.cost_source != crate::record::CostSource::NoUsage {
            if let Some(u) = &r.upcoming {
                self.record_latest(r, u, rec);
            }
            self.handles
                .tokens(r, t.input, t.output, &self.input, &self.output);
        }
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

impl Series {
    /// The conventions' latest instruments: usage by modality, per-operation distributions,
    /// duration and time to first chunk.
    fn record_latest(&mut self, r: &super::Recorder, u: &super::Upcoming, rec: &CallRecord) {
        use crate::record::{Modality, ModalityCounts};
        let t = &rec.tokens;
        let totals = [t.input, t.output, t.cache_read, t.cache_write, t.reasoning];
        let by_modality: [fn(&ModalityCounts) -> Option<u64>; 3] =
            [|c| c.input, |c| c.output, |c| c.cache_read];
        for (i, total) in totals.into_iter().enumerate() {
            let mut rest = total;
            let mut reported = false;
            if let (Some(modality), Some(pick)) = (&rec.modality, by_modality.get(i)) {
                for (m, kind) in Modality::ALL.into_iter().enumerate() {
                    if let Some(v) = modality.get(kind).and_then(pick) {
                        u.counters()[i].add(v, &self.modal[m]);
                        rest = rest.saturating_sub(v);
                        reported = true;
                    }
                }
            }
            // What the provider did not break down (all of it, without a breakdown).
            if rest > 0 || !reported {
                self.handles.unknown(r, i, rest, &self.modal[UNKNOWN]);
            }
        }
        u.operation_input.record(t.input, &self.common);
        u.operation_output.record(t.output, &self.common);
        let seconds = rec.latency_ms as f64 / 1000.0;
        match &rec.error {
            Some(e) => {
                let mut attrs = self.common.clone();
                attrs.push(KeyValue::new(super::ERROR_TYPE, super::error_type(e)));
                u.duration.record(seconds, &attrs);
            }
            None => u.duration.record(seconds, &self.common),
        }
        if let Some(ms) = rec.ttft_ms {
            u.time_to_first_chunk
                .record(ms as f64 / 1000.0, &self.common);
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
        let values = r.attribute_values(rec);
        let key = key(rec, &values);
        let at = match self.last {
            Some((last, at)) if last == key => at,
            _ => self.find_or_build(r, rec, key, values),
        };
        self.last = Some((key, at));
        &mut self.series[at]
    }

    fn find_or_build(
        &mut self,
        r: &super::Recorder,
        rec: &CallRecord,
        key: Key,
        values: Values,
    ) -> usize {
        if let Some(&at) = self.index.get(&key) {
            return at;
        }
        if self.series.len() >= MAX_SERIES {
            self.series.clear();
            self.index.clear();
        }
        let common = r.common_attributes(rec, &values);
        let mut input = common.clone();
        input.push(KeyValue::new(super::TOKEN_TYPE, "input"));
        let mut output = common.clone();
        output.push(KeyValue::new(super::TOKEN_TYPE, "output"));
        let modal: Vec<Vec<KeyValue>> = if r.upcoming.is_some() {
            ["text", "image", "audio", "unknown"]
                .into_iter()
                .map(|m| {
                    let mut attrs = common.clone();
                    attrs.push(KeyValue::new(super::TOKEN_MODALITY, m));
                    attrs
                })
                .collect()
        } else {
            Vec::new()
        };
        let unknown = modal.get(UNKNOWN).map_or(&common[..], |a| &a[..]);
        self.series.push(Series {
            _pinned: pin(rec, values),
            handles: handles::Handles::new(r, unknown, &input, &output),
            common,
            input,
            output,
            modal,
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
