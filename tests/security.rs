//! The layer's own stderr warnings never carry raw control characters: a model name with
//! escape sequences or bidirectional overrides is shown escaped. (The command's output is
//! checked in the llm-usage crate's tests.)

/// Characters that must never reach a terminal raw.
fn raw_control(text: &str) -> Option<char> {
    text.chars().find(|&c| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    })
}

#[test]
fn the_layers_warnings_are_escaped() {
    use tracing::info_span;
    use tracing_llm_usage::UsageLayer;
    use tracing_subscriber::prelude::*;
    if std::env::var("LLM_USAGE_TEST_CHILD").is_ok() {
        let (layer, guard) = UsageLayer::builder().build().unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            drop(info_span!(
                "llm_call",
                model = "evil\u{1b}[2J\u{1b}]0;pwned\u{7}model\u{202e}",
                tokens.input = 1u64,
                tokens.output = 1u64
            ));
        });
        drop(guard);
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["the_layers_warnings_are_escaped", "--exact", "--nocapture"])
        .env("LLM_USAGE_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.starts_with("tracing-llm-usage: no price for model"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert_eq!(raw_control(warning), None, "{warning}");
    assert!(
        warning.contains("\"evil\\u{1b}[2J\\u{1b}]0;pwned\\u{7}model\\u{202e}\""),
        "{warning}"
    );
}
