//! `llm-usage`: reports from tracing-llm-usage JSONL logs. See `llm-usage --help`.

fn main() -> std::process::ExitCode {
    tracing_llm_usage::cli::main()
}
