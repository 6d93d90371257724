//! A local OpenAI-compatible server for the compat tests: Chat Completions and Responses, unary
//! and streamed (SSE), with tool calls so an agent takes several turns, and embeddings. Every
//! reply reports distinct usage (cached and reasoning tokens included), kept in the order
//! served. As OpenAI does, a streamed chat reply carries its usage only when the request asks
//! for it (`stream_options.include_usage`). A request for a model whose name starts with
//! `fail` gets a 500 with an OpenAI error body, and is logged with no usage.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// A writer into shared memory, for the layer's lines: a `MakeWriter` by cloning.
#[derive(Clone, Debug, Default)]
pub struct Buf(pub Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    /// Every line written so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8_lossy(&self.0.lock().expect("buffer")).into_owned();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

/// What one reply reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// `chat`, `responses` or `embeddings`.
    pub api: &'static str,
    /// Whether the reply was streamed.
    pub stream: bool,
    /// Whether the reply asked for a tool call.
    pub tool_call: bool,
    /// Input tokens, cached ones included.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Cached input tokens.
    pub cached: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Whether the reply carried its usage (a stream not asked for it does not).
    pub usage_sent: bool,
    /// Whether the request failed (a 500).
    pub failed: bool,
}

/// The server, listening on 127.0.0.1 until the process ends.
pub struct MockOpenAi {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    served: Arc<Mutex<Vec<Served>>>,
}

/// How many tool results a conversation carries before the model answers in text.
pub const TOOL_TURNS: usize = 2;

impl MockOpenAi {
    /// Starts the server on a free local port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let served = Arc::new(Mutex::new(Vec::new()));
        let log = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &log);
                });
            }
        });
        Self {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            served,
        }
    }

    /// Every reply so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.served.lock().expect("served log").clone()
    }

    /// Replies served since the first `from`.
    pub fn served_since(&self, from: usize) -> Vec<Served> {
        self.served()[from..].to_vec()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Served>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let api = if path.ends_with("/chat/completions") {
        "chat"
    } else if path.ends_with("/responses") {
        "responses"
    } else if path.ends_with("/embeddings") {
        "embeddings"
    } else {
        return respond(stream, "404 Not Found", "application/json", b"{}");
    };
    let stream_reply = request["stream"] == true;
    let failed = request["model"]
        .as_str()
        .is_some_and(|m| m.starts_with("fail"));
    let usage_sent = !failed
        && (api != "chat" || !stream_reply || request["stream_options"]["include_usage"] == true);
    let has_tools = request["tools"].as_array().is_some_and(|t| !t.is_empty());
    let tool_results = match api {
        "chat" => count(&request["messages"], |m| m["role"] == "tool"),
        _ => count(&request["input"], |m| m["type"] == "function_call_output"),
    };
    let tool_call = has_tools && tool_results < TOOL_TURNS;
    let served = {
        let mut log = log.lock().expect("served log");
        let n = log.len() as u64 + 1;
        let served = if failed {
            Served {
                api,
                stream: stream_reply,
                tool_call: false,
                input: 0,
                output: 0,
                cached: 0,
                reasoning: 0,
                usage_sent,
                failed,
            }
        } else if api == "embeddings" {
            Served {
                api,
                stream: false,
                tool_call: false,
                input: 10 * n,
                output: 0,
                cached: 0,
                reasoning: 0,
                usage_sent,
                failed,
            }
        } else {
            Served {
                api,
                stream: stream_reply,
                tool_call,
                input: 1000 + 100 * n,
                output: 20 + n,
                cached: 64 * n,
                reasoning: 3 * n,
                usage_sent,
                failed,
            }
        };
        log.push(served.clone());
        served
    };
    let model = format!(
        "{}-2025-04-14",
        request["model"].as_str().unwrap_or("model")
    );
    if failed {
        let body = json!({"error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": null,
            "code": null
        }});
        return respond(
            stream,
            "500 Internal Server Error",
            "application/json",
            body.to_string().as_bytes(),
        );
    }
    match (api, stream_reply) {
        ("embeddings", _) => {
            let reply = json!({
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5, 0.125]}],
                "model": model,
                "usage": {"prompt_tokens": served.input, "total_tokens": served.input}
            });
            respond(
                stream,
                "200 OK",
                "application/json",
                reply.to_string().as_bytes(),
            )
        }
        ("chat", false) => {
            let reply = chat_reply(&served, &model);
            respond(
                stream,
                "200 OK",
                "application/json",
                reply.to_string().as_bytes(),
            )
        }
        ("chat", true) => sse(stream, &chat_chunks(&served, &model)),
        (_, false) => {
            let reply = responses_reply(&served, &model, "completed");
            respond(
                stream,
                "200 OK",
                "application/json",
                reply.to_string().as_bytes(),
            )
        }
        (_, true) => sse(stream, &responses_events(&served, &model)),
    }
}

fn count(items: &Value, pred: impl Fn(&Value) -> bool) -> usize {
    items
        .as_array()
        .map_or(0, |a| a.iter().filter(|m| pred(m)).count())
}

fn respond(mut stream: TcpStream, status: &str, kind: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}

fn sse(mut stream: TcpStream, events: &[(Option<&str>, Value)]) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
    )?;
    for (event, data) in events {
        if let Some(event) = event {
            writeln!(stream, "event: {event}")?;
        }
        write!(stream, "data: {data}\n\n")?;
    }
    if events.first().is_some_and(|(e, _)| e.is_none()) {
        write!(stream, "data: [DONE]\n\n")?;
    }
    stream.flush()
}

fn chat_usage(s: &Served) -> Value {
    json!({
        "prompt_tokens": s.input,
        "completion_tokens": s.output,
        "total_tokens": s.input + s.output,
        "prompt_tokens_details": {"cached_tokens": s.cached},
        "completion_tokens_details": {"reasoning_tokens": s.reasoning}
    })
}

fn tool_call_json() -> Value {
    json!({
        "id": "call_1",
        "type": "function",
        "function": {"name": "forecast", "arguments": "{\"city\":\"Paris\"}"}
    })
}

fn chat_reply(s: &Served, model: &str) -> Value {
    let message = if s.tool_call {
        json!({"role": "assistant", "content": null, "tool_calls": [tool_call_json()]})
    } else {
        json!({"role": "assistant", "content": "Sunny, 21 degrees."})
    };
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_765_708_215,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": if s.tool_call { "tool_calls" } else { "stop" }
        }],
        "usage": chat_usage(s)
    })
}

fn chat_chunks(s: &Served, model: &str) -> Vec<(Option<&'static str>, Value)> {
    let chunk = |choices: Value, usage: Value| {
        (
            None,
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1_765_708_215,
                "model": model,
                "choices": choices,
                "usage": usage
            }),
        )
    };
    let delta = if s.tool_call {
        let mut call = tool_call_json();
        call["index"] = json!(0);
        json!({"role": "assistant", "tool_calls": [call]})
    } else {
        json!({"role": "assistant", "content": "Sunny, 21 degrees."})
    };
    [
        chunk(
            json!([{"index": 0, "delta": delta, "finish_reason": null}]),
            Value::Null,
        ),
        chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": if s.tool_call { "tool_calls" } else { "stop" }}]),
            Value::Null,
        ),
    ]
    .into_iter()
    .chain(s.usage_sent.then(|| chunk(json!([]), chat_usage(s))))
    .collect()
}

fn responses_reply(s: &Served, model: &str, status: &str) -> Value {
    let output = if s.tool_call {
        json!([{
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "forecast",
            "arguments": "{\"city\":\"Paris\"}",
            "status": "completed"
        }])
    } else {
        json!([{
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Sunny, 21 degrees.", "annotations": []}]
        }])
    };
    json!({
        "id": "resp_1",
        "object": "response",
        "created_at": 1_765_708_215,
        "status": status,
        "model": model,
        "output": output,
        "usage": {
            "input_tokens": s.input,
            "input_tokens_details": {"cached_tokens": s.cached},
            "output_tokens": s.output,
            "output_tokens_details": {"reasoning_tokens": s.reasoning},
            "total_tokens": s.input + s.output
        }
    })
}

fn responses_events(s: &Served, model: &str) -> Vec<(Option<&'static str>, Value)> {
    let mut created = responses_reply(s, model, "in_progress");
    created["output"] = json!([]);
    created["usage"] = Value::Null;
    let done = responses_reply(s, model, "completed");
    let mut events = vec![(
        Some("response.created"),
        json!({"type": "response.created", "sequence_number": 0, "response": created}),
    )];
    if !s.tool_call {
        events.push((
            Some("response.output_text.delta"),
            json!({
                "type": "response.output_text.delta",
                "sequence_number": 1,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": "Sunny, 21 degrees."
            }),
        ));
    }
    for (i, item) in done["output"].as_array().into_iter().flatten().enumerate() {
        events.push((
            Some("response.output_item.done"),
            json!({"type": "response.output_item.done", "sequence_number": 2 + i, "output_index": i, "item": item}),
        ));
    }
    events.push((
        Some("response.completed"),
        json!({"type": "response.completed", "sequence_number": 9, "response": done}),
    ));
    events
}
