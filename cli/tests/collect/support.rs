//! The collector as a child process, OTLP requests made by hand, a plain HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;
#[path = "../../../tests/pki/mod.rs"]
mod pki;
pub use common::{calls, llm_usage_json, parse_lines, summaries, Buf};
pub use pki::Pki;

/// `llm-usage collect` on free local ports, writing into a temporary directory.
pub struct Collector {
    child: Child,
    pub dir: tempfile::TempDir,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    stderr: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_llm-usage"));
        cmd.arg("collect")
            .arg("--jsonl-dir")
            .arg(dir.path())
            .args(["--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !args.contains(&"--settle-ms") {
            cmd.args(["--settle-ms", "0"]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, text) = (child.stderr.take().unwrap(), stderr.clone());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let line = line.unwrap();
                let mut t = text.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let (grpc, http) = loop {
            let text = stderr.lock().unwrap().clone();
            let addr = |what: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("llm-usage collect: OTLP/{what} on ")))
                    .map(|a| a.parse::<SocketAddr>().unwrap())
            };
            if let (Some(g), Some(h)) = (addr("gRPC"), addr("HTTP")) {
                break (g, h);
            }
            assert!(
                Instant::now() < deadline,
                "the collector did not start: {text}"
            );
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the collector exited ({status}): {text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            dir,
            grpc,
            http,
            stderr,
            reader: Some(reader),
        }
    }

    /// SIGTERM; waits for the exit; its stderr and every line written.
    pub fn stop(self) -> (String, Vec<Value>) {
        let (stderr, lines, _) = self.stop_keeping_logs();
        (stderr, lines)
    }

    /// What `stop` does, and the directory of the logs, kept until it is dropped.
    pub fn stop_keeping_logs(mut self) -> (String, Vec<Value>, tempfile::TempDir) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let text = self.stderr.lock().unwrap().clone();
        assert!(status.success(), "the collector failed ({status}): {text}");
        let lines = self.lines();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (text, lines, dir)
    }

    /// Every line of every JSONL file written so far.
    pub fn lines(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            out.extend(parse_lines(&std::fs::read_to_string(f).unwrap()));
        }
        out
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// A POST over a fresh connection: the status and the body; `None` when the connection
/// failed (the receiver is gone).
pub fn try_post(
    addr: SocketAddr,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    exchange(&mut stream, content_type, headers, body)
}

pub fn post(
    addr: SocketAddr,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    try_post(addr, content_type, headers, body).expect("the collector answers")
}

/// Writes one HTTP/1.1 request and reads the whole answer.
pub fn exchange<S: Read + Write>(
    stream: &mut S,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let mut head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text_end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..text_end]).into_owned();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let mut rest = answer[text_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        rest = dechunk(&rest);
    }
    Some((status, rest))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
    out
}

impl Pki {
    pub fn path(&self, name: &str) -> &str {
        let p = match name {
            "ca.crt" => &self.ca,
            "server.crt" => &self.server_cert,
            "server.key" => &self.server_key,
            "client.crt" => &self.client_cert,
            "client.key" => &self.client_key,
            other => panic!("no {other}"),
        };
        p.to_str().unwrap()
    }

    /// A POST over TLS, with the client certificate or without; `None` when the handshake or
    /// the exchange failed.
    pub fn post_tls(
        &self,
        addr: SocketAddr,
        body: &[u8],
        certified: bool,
    ) -> Option<(u16, Vec<u8>)> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = if certified {
            let chain = CertificateDer::pem_file_iter(&self.client_cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(&self.client_key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        } else {
            builder.with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let conn = rustls::ClientConnection::new(
            Arc::new(config),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let sock = TcpStream::connect(addr).ok()?;
        sock.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        exchange(&mut tls, "application/x-protobuf", &[], body)
    }
}

pub fn s(text: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(text.to_owned())),
    }
}

pub fn int(i: i64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(i)),
    }
}

/// A span of trace `trace` (ids from small numbers), 1 s long, at a fixed time.
pub fn span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    name: &str,
    attributes: &[(&str, AnyValue)],
) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.to_owned(),
        start_time_unix_nano: 1_765_000_000_000_000_000 + u64::from(id) * 1_000_000,
        end_time_unix_nano: 1_765_000_001_000_000_000 - u64::from(id) * 1_000_000,
        attributes: attributes
            .iter()
            .map(|(k, v)| KeyValue {
                key: (*k).to_owned(),
                value: Some(v.clone()),
                ..KeyValue::default()
            })
            .collect(),
        ..Span::default()
    }
}

/// An OpenTelemetry GenAI chat span with usage.
pub fn chat(trace: u8, id: u8, parent: Option<u8>, input: i64, output: i64) -> Span {
    span(
        trace,
        id,
        parent,
        "chat gpt-4o",
        &[
            ("gen_ai.operation.name", s("chat")),
            ("gen_ai.system", s("openai")),
            ("gen_ai.request.model", s("gpt-4o")),
            ("gen_ai.usage.input_tokens", int(input)),
            ("gen_ai.usage.output_tokens", int(output)),
        ],
    )
}

/// A chat span of its own trace, numbered `n`, whose parent never comes.
pub fn chat_in(n: u32, input: u64) -> Span {
    let mut c = chat(0, 2, Some(1), input as i64, 1);
    c.trace_id = [&n.to_be_bytes()[..], &[9; 12]].concat();
    c
}

/// One request with every span under one resource.
pub fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(s("test")),
                    ..KeyValue::default()
                }],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn summary<'a>(lines: &'a [Value], run_id: &str) -> &'a Value {
    let found: Vec<_> = summaries(lines)
        .into_iter()
        .filter(|l| l["run_id"] == run_id)
        .collect();
    assert_eq!(found.len(), 1, "one summary for {run_id}: {lines:#?}");
    found[0]
}

/// The line without what differs between two recordings of the same work.
pub fn stable(line: &Value) -> Value {
    let mut v = line.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("timestamp");
    o.remove("latency_ms");
    o.remove("elapsed_seconds");
    v
}

/// Request bodies received, with their paths.
pub type Captured = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An OTLP/HTTP receiver of anything: every request body, by path.
pub fn capture_server() -> (SocketAddr, Captured) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or("").to_owned();
                    let mut length = 0;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    store.lock().unwrap().push((path, body));
                    let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
                    reader.get_mut().write_all(ok.as_bytes()).unwrap();
                }
            });
        }
    });
    (addr, got)
}

/// A gRPC codec that sends and receives bytes as they are: a malformed request.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

/// `Export` with `body` as the request message, over gRPC: the status code.
pub async fn export_raw(addr: SocketAddr, body: Vec<u8>) -> tonic::Code {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    match grpc.unary(tonic::Request::new(body), path, RawCodec).await {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    }
}
