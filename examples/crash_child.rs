//! Makes calls in a tight loop until it is killed: the child of the crash test
//! (`tests/reliability.rs`). Writes daily files under the directory given as its argument and
//! prints `ready` once the layer is installed.
//!
//! ```text
//! cargo run --example crash_child -- /tmp/llm-usage-crash
//! ```

use std::io::Write;

use tracing::info_span;
use tracing_llm_usage::UsageLayer;
use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: crash_child DIR")?;
    let (layer, _guard) = UsageLayer::builder().jsonl_dir(dir).build()?;
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;
    println!("ready");
    std::io::stdout().flush()?;
    for run in 0u64.. {
        let span = info_span!("run", run_id = %format_args!("crash-{run}"));
        let _in_run = span.enter();
        for k in 0..5u64 {
            drop(info_span!(
                "llm_call",
                step = "loop",
                model = "gpt-4o",
                provider = "openai",
                tokens.input = 100 + k,
                tokens.output = 10 + run % 7
            ));
        }
    }
    Ok(())
}
