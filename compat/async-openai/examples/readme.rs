use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequestArgs,
};
use async_openai::types::responses::CreateResponseArgs;
use async_openai::Client;
use futures::StreamExt;
use tracing::{info_span, Instrument};
use tracing_llm_usage::{llm_call_span, record_error, Usage, UsageLayer, UsageStream};
use tracing_subscriber::prelude::*;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (layer, guard) = UsageLayer::builder()
        .jsonl_dir("./llm_usage_logs")
        .build()?;
    tracing_subscriber::registry().with(layer).init();
    // OPENAI_API_KEY, and OPENAI_BASE_URL for another OpenAI-compatible server.
    let client = Client::new();

    async {
        // Chat Completions: the typed reply, as JSON, gives its usage.
        let call = llm_call_span!(step = "answer", model = "gpt-4o-mini", provider = "openai");
        let request = CreateChatCompletionRequestArgs::default()
            .model("gpt-4o-mini")
            .messages([ChatCompletionRequestUserMessage::from("Weather in Paris?").into()])
            .build()?;
        match client.chat().create(request).instrument(call.clone()).await {
            Ok(reply) => Usage::from_openai(&serde_json::to_value(&reply)?)?.record_on(&call),
            // A failed request: its line says so (no tokens, no cost) and the run is `error`.
            Err(e) => record_error(&call, &e),
        }
        drop(call);

        // A stream carries its usage only when asked (`include_usage`); UsageStream folds it.
        let call = llm_call_span!(step = "answer", model = "gpt-4o-mini", provider = "openai");
        let request = CreateChatCompletionRequestArgs::default()
            .model("gpt-4o-mini")
            .messages([ChatCompletionRequestUserMessage::from("And tomorrow?").into()])
            .stream_options(ChatCompletionStreamOptions {
                include_usage: Some(true),
                ..Default::default()
            })
            .build()?;
        let mut usage = UsageStream::openai();
        match client
            .chat()
            .create_stream(request)
            .instrument(call.clone())
            .await
        {
            Ok(mut stream) => {
                while let Some(chunk) = stream.next().instrument(call.clone()).await {
                    match chunk {
                        Ok(chunk) => usage.push(&serde_json::to_value(&chunk)?)?,
                        Err(e) => record_error(&call, &e),
                    }
                }
                if let Ok(u) = usage.usage() {
                    u.record_on(&call);
                }
            }
            Err(e) => record_error(&call, &e),
        }
        drop(call);

        // The Responses API has its own helper.
        let call = llm_call_span!(step = "summary", model = "gpt-4o-mini", provider = "openai");
        let request = CreateResponseArgs::default()
            .model("gpt-4o-mini")
            .input("Summarise the forecast.")
            .build()?;
        match client
            .responses()
            .create(request)
            .instrument(call.clone())
            .await
        {
            Ok(reply) => {
                Usage::from_openai_responses(&serde_json::to_value(&reply)?)?.record_on(&call)
            }
            Err(e) => record_error(&call, &e),
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .instrument(info_span!("run", run_id = "weather-1"))
    .await?;

    drop(guard); // writes every line
    Ok(())
}
