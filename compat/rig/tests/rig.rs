//! rig-core and rig-agent, unchanged, against a local OpenAI-compatible server, with the layer
//! set up as the README says: `UsageLayer::builder()` and a run span around each workflow.
//! Every provider request must be one line with the served counts, and every run's summary
//! their sums.

use futures::StreamExt;
use rig_agent::prelude::*;
use rig_compat::{Buf, MockOpenAi, Served};
use rig_core::providers::openai::OpenAIConfig;
use rig_core::tool::ToolContext;
use serde_json::Value;
use tracing::{info_span, Instrument};
use tracing_llm_usage::{PriceTable, UsageLayer};
use tracing_subscriber::prelude::*;

struct Forecast;

#[derive(serde::Deserialize)]
struct ForecastArgs {
    city: String,
}

impl Tool for Forecast {
    const NAME: &'static str = "forecast";
    type Args = ForecastArgs;
    type Output = String;
    type Error = std::convert::Infallible;

    fn description(&self) -> String {
        "The weather forecast for a city.".into()
    }

    fn parameters(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        })
    }

    async fn call(&self, _: &mut ToolContext, args: ForecastArgs) -> Result<String, Self::Error> {
        Ok(format!("{}: sunny", args.city))
    }
}

/// The calls of one run, and its summary.
struct Run {
    id: String,
    served: Vec<Served>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rig_request_is_one_exact_line_in_its_run() {
    let server = MockOpenAi::start();
    let buf = Buf::default();
    let (layer, guard) = UsageLayer::builder()
        .prices(PriceTable::new())
        .jsonl_writer({
            let buf = buf.clone();
            move || buf.clone()
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    tracing_subscriber::registry().with(layer).init();

    let mut config = OpenAIConfig::new("sk-test");
    config.base_url = server.base_url.clone();
    let client = config.client();
    let tool_agent = AgentBuilder::new(client.chat("gpt-4.1-mini"))
        .name("weather")
        .preamble("Answer with the forecast.")
        .tool(Forecast)
        .default_max_turns(5)
        .build();
    let plain_agent = AgentBuilder::new(client.responses("gpt-4.1-mini"))
        .name("writer")
        .build();

    let mut runs: Vec<Run> = Vec::new();
    let mut mark = 0;
    let mut record = |id: &str, runs: &mut Vec<Run>| {
        let served = server.served_since(mark);
        mark += served.len();
        runs.push(Run {
            id: id.to_owned(),
            served,
        });
    };

    // Plain calls: Chat Completions and Responses, unary and streamed.
    async {
        let chat = client.chat("gpt-4.1");
        chat.call("Hello").await.unwrap();
        chat.stream("Hello").unwrap().finish().await.unwrap();
        let responses = client.responses("gpt-4.1");
        responses.call("Hello").await.unwrap();
        responses.stream("Hello").unwrap().finish().await.unwrap();
    }
    .instrument(info_span!("workflow", run_id = "plain"))
    .await;
    record("plain", &mut runs);

    // A tool agent: three turns (two tool calls, then the answer).
    async {
        tool_agent.prompt("Weather in Paris?").await.unwrap();
    }
    .instrument(info_span!("workflow", run_id = "tool-agent"))
    .await;
    record("tool-agent", &mut runs);

    // A streaming agent.
    async {
        let mut stream = plain_agent.prompt("Write a line.").stream();
        while let Some(item) = stream.next().await {
            item.unwrap();
        }
    }
    .instrument(info_span!("workflow", run_id = "streaming-agent"))
    .await;
    record("streaming-agent", &mut runs);

    // `Agent::chat` with history, through the tool agent.
    async {
        let mut history = Vec::new();
        tool_agent
            .chat("Weather in Paris?", &mut history)
            .await
            .unwrap();
    }
    .instrument(info_span!("workflow", run_id = "chat-history"))
    .await;
    record("chat-history", &mut runs);

    // An agent outside any run span: rig-agent's own `invoke_agent` span is its run.
    tool_agent.prompt("Weather in Paris?").await.unwrap();
    let agent_run = handle
        .recent_runs()
        .into_iter()
        .find(|r| r.run_id.starts_with("weather-"))
        .expect("the agent invocation outside any run is a run");
    record(&agent_run.run_id, &mut runs);

    drop(guard);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("Sunny"), "reply text reached the log");
    assert!(
        !text.contains("Weather in Paris"),
        "prompt text reached the log"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let mut total_calls = 0;
    for run in &runs {
        let calls: Vec<&Value> = lines
            .iter()
            .filter(|l| l["event"] == "llm_call" && l["run_id"] == run.id.as_str())
            .collect();
        let summary: Vec<&Value> = lines
            .iter()
            .filter(|l| l["event"] == "run_summary" && l["run_id"] == run.id.as_str())
            .collect();
        println!(
            "{}: {} requests served, {} lines, summary call_count {}",
            run.id,
            run.served.len(),
            calls.len(),
            summary
                .first()
                .map_or(Value::Null, |s| s["usage"]["call_count"].clone())
        );
        assert_eq!(
            calls.len(),
            run.served.len(),
            "{}: one line per request",
            run.id
        );
        for (line, s) in calls.iter().zip(&run.served) {
            let t = &line["tokens"];
            assert_eq!(
                (t["input"].as_u64(), t["output"].as_u64()),
                (Some(s.input), Some(s.output)),
                "{}: {line}",
                run.id
            );
            assert_eq!(t["cache_read"].as_u64(), Some(s.cached), "{line}");
            assert_eq!(t["reasoning"].as_u64(), Some(s.reasoning), "{line}");
            assert_eq!(line["provider"], "openai");
            assert_eq!(line["stream"], s.stream, "{line}");
        }
        assert_eq!(summary.len(), 1, "{}: one summary", run.id);
        let u = &summary[0]["usage"];
        assert_eq!(u["call_count"].as_u64(), Some(run.served.len() as u64));
        assert_eq!(
            u["input_tokens"].as_u64(),
            Some(run.served.iter().map(|s| s.input).sum::<u64>())
        );
        assert_eq!(
            u["output_tokens"].as_u64(),
            Some(run.served.iter().map(|s| s.output).sum::<u64>())
        );
        total_calls += run.served.len();
    }
    let served = server.served();
    assert_eq!(
        runs.iter().map(|r| r.served.len()).collect::<Vec<_>>(),
        [4, 3, 1, 3, 3]
    );
    assert_eq!(total_calls, served.len());
    assert_eq!(handle.totals().calls, served.len() as u64);
    assert_eq!(
        handle.totals().input_tokens,
        served.iter().map(|s| s.input).sum::<u64>()
    );
    assert_eq!(handle.stats().uncounted_spans, 0);
    assert_eq!(handle.stats().disabled_callsites, 0);
}
