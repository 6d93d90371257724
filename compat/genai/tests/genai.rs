//! genai 0.7 with its `otel` feature, unchanged, against a local OpenAI-compatible server, with
//! the layer set up as the README says. Every request is one line with the served counts and a
//! cost checked by hand from LiteLLM's file; a stream read without its usage and a failed
//! request are lines that say so, never free calls; an agent outside any run is a run named
//! by the agent.

use futures::StreamExt;
use genai::adapter::AdapterKind;
use genai::chat::{ChatMessage, ChatOptions, ChatRequest};
use genai::resolver::{AuthData, Endpoint, ServiceTargetResolver};
use genai::{Client, ModelIden, ServiceTarget};
use genai_compat::{Buf, MockOpenAi, Served};
use serde_json::Value;
use tracing::{info_span, Instrument};
use tracing_llm_usage::{PriceTable, UsageLayer};
use tracing_subscriber::prelude::*;

/// A genai client whose OpenAI requests go to `server`.
fn client(server: &MockOpenAi) -> Client {
    let endpoint = format!("{}/", server.base_url);
    let resolver = ServiceTargetResolver::from_resolver_fn(
        move |target: ServiceTarget| -> Result<ServiceTarget, genai::resolver::Error> {
            Ok(ServiceTarget {
                endpoint: Endpoint::from_owned(endpoint.clone()),
                auth: AuthData::from_single("test-key"),
                model: ModelIden::new(AdapterKind::OpenAI, target.model.model_name),
            })
        },
    );
    Client::builder()
        .with_service_target_resolver(resolver)
        .build()
        .expect("a genai client")
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![ChatMessage::user("Weather in Paris?")])
}

/// gpt-4o-mini in LiteLLM's file: 1.5e-7 a token in, 7.5e-8 cached, 6e-7 out.
fn gpt_4o_mini(s: &Served) -> f64 {
    (s.input - s.cached) as f64 * 1.5e-7 + s.cached as f64 * 7.5e-8 + s.output as f64 * 6e-7
}

fn tokens(line: &Value) -> (u64, u64, u64, u64) {
    let t = &line["tokens"];
    let n = |k: &str| t[k].as_u64().unwrap();
    (n("input"), n("output"), n("cache_read"), n("reasoning"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_genai_request_is_one_line_that_says_what_is_known() {
    let server = MockOpenAi::start();
    let buf = Buf::default();
    let (layer, guard) = UsageLayer::builder()
        .prices(PriceTable::bundled())
        .jsonl_writer({
            let buf = buf.clone();
            move || buf.clone()
        })
        .build()
        .unwrap();
    let handle = layer.handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let _default = tracing::dispatcher::set_default(&dispatch);
    let client = client(&server);
    let captured = ChatOptions::default().with_capture_usage(true);

    async {
        // Plain chat.
        client
            .exec_chat("gpt-4o-mini", request(), None)
            .await
            .unwrap();
        // A stream asked for its usage, read to the end.
        let mut stream = client
            .exec_chat_stream("gpt-4o-mini", request(), Some(&captured))
            .await
            .unwrap()
            .stream;
        while let Some(event) = stream.next().await {
            event.unwrap();
        }
        // genai's span closes with the stream.
        drop(stream);
        // A stream not asked for its usage: the server sends none.
        let mut stream = client
            .exec_chat_stream("gpt-4o-mini", request(), None)
            .await
            .unwrap()
            .stream;
        while let Some(event) = stream.next().await {
            event.unwrap();
        }
        drop(stream);
        // Embeddings.
        client
            .embed("text-embedding-3-small", "Paris", None)
            .await
            .unwrap();
        // A request the server fails.
        let failed = client.exec_chat("fail-gpt-4o-mini", request(), None).await;
        assert!(failed.is_err());
    }
    .instrument(info_span!("run", run_id = "genai-run"))
    .await;

    // An agent invocation outside any run: a run of its own, named by the agent.
    let agent = genai::otel::agent::AgentSpan::invoke_agent()
        .with_name("researcher")
        .start();
    async {
        client
            .exec_chat("gpt-4o-mini", request(), None)
            .await
            .unwrap();
    }
    .instrument(agent)
    .await;

    let stats = handle.stats();
    drop(_default);
    drop(guard);

    let served = server.served();
    assert_eq!(
        served
            .iter()
            .map(|s| (s.api, s.stream, s.usage_sent, s.failed))
            .collect::<Vec<_>>(),
        [
            ("chat", false, true, false),
            ("chat", true, true, false),
            ("chat", true, false, false),
            ("embeddings", false, true, false),
            ("chat", false, false, true),
            ("chat", false, true, false),
        ]
    );
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let calls: Vec<&Value> = lines.iter().filter(|l| l["event"] == "llm_call").collect();
    assert_eq!(calls.len(), 6, "{text}");

    // Served counts, exactly, and costs from the file.
    for i in [0, 1, 5] {
        let (s, c) = (&served[i], calls[i]);
        assert_eq!(tokens(c), (s.input, s.output, s.cached, s.reasoning), "{c}");
        assert_eq!(c["cost_source"], "local");
        let cost = c["cost_usd"].as_f64().unwrap();
        assert!((cost - gpt_4o_mini(s)).abs() < 1e-9, "{cost} {c}");
    }
    assert_eq!(calls[1]["stream"], true);
    // The stream without usage: unknown, said so, never $0.
    let c = calls[2];
    assert_eq!(
        (c["cost_usd"].clone(), c["cost_source"].clone()),
        (Value::Null, "no_usage".into())
    );
    assert_eq!(tokens(c), (0, 0, 0, 0));
    assert!(c["warnings"][0]
        .as_str()
        .unwrap()
        .contains("no token usage was recorded"));
    // Embeddings: input tokens at text-embedding-3-small's 2e-8.
    let c = calls[3];
    assert_eq!(tokens(c), (served[3].input, 0, 0, 0));
    assert!((c["cost_usd"].as_f64().unwrap() - served[3].input as f64 * 2e-8).abs() < 1e-12);
    // The failed request: its error, no usage, no cost.
    let c = calls[4];
    assert!(c["error"].is_string(), "{c}");
    assert_eq!(
        (c["cost_usd"].clone(), c["cost_source"].clone()),
        (Value::Null, "no_usage".into())
    );
    assert_eq!(stats.no_usage_calls, 2);

    // The run: every call, the known costs summed, the unknowns counted, and failed.
    let summary = lines
        .iter()
        .find(|l| l["event"] == "run_summary" && l["run_id"] == "genai-run")
        .unwrap();
    assert_eq!(summary["status"], "error");
    assert_eq!(summary["usage"]["call_count"], 5);
    assert_eq!(summary["usage"]["unpriced_calls"], 2);
    let known = gpt_4o_mini(&served[0]) + gpt_4o_mini(&served[1]) + served[3].input as f64 * 2e-8;
    assert!((summary["usage"]["cost_usd"].as_f64().unwrap() - known).abs() < 1e-9);
    for c in &calls[..5] {
        assert_eq!(c["run_id"], "genai-run");
    }
    // The agent's run is named by the agent, recorded after its span opened.
    let run = calls[5]["run_id"].as_str().unwrap();
    assert!(run.starts_with("researcher-"), "{run}");
    assert_eq!(calls[5]["agent"], "researcher");
    let summary = lines
        .iter()
        .find(|l| l["event"] == "run_summary" && l["run_id"] == run)
        .unwrap();
    assert_eq!(summary["usage"]["call_count"], 1);
}
