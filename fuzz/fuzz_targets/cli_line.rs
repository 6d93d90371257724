//! Any bytes as a log line: `check_line` returns, never panics, and whatever it accepts is
//! well-formed JSON (numbers beyond f64 included: the grammar allows them).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if tracing_llm_usage::cli::check_line(data).is_ok() {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok());
    }
});
