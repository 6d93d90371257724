//! Any bytes as a log line: the decoder the reports use returns, never panics, and whatever it
//! accepts is well-formed JSON (numbers beyond f64 included: the grammar allows them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracing_llm_usage::format::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = decode::parse(data) {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok());
        if let Some(raw) = line.prompt_breakdown {
            let _ = decode::components(raw);
        }
    }
});
