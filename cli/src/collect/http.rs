//! OTLP/HTTP: `POST /v1/traces`, protobuf or JSON, plain or gzip, answered in the request's
//! encoding as the OTLP specification says (partial success, 400 for what cannot be read,
//! 503 with `Retry-After` when busy).

use std::io::Read;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::intake::{Counters, Intake, Outcome};

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

pub(super) fn router(intake: Arc<Intake>) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .with_state(intake)
}

fn reply(encoding: Encoding, status: StatusCode, body: Vec<u8>) -> Response {
    let kind = match encoding {
        Encoding::Protobuf => "application/x-protobuf",
        Encoding::Json => "application/json",
    };
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(kind))],
        body,
    )
        .into_response()
}

fn error(encoding: Encoding, status: StatusCode, code: i32, message: &str) -> Response {
    let body = match encoding {
        Encoding::Protobuf => RpcStatus {
            code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&serde_json::json!({
            "code": code,
            "message": message,
        }))
        .unwrap_or_default(),
    };
    reply(encoding, status, body)
}

/// gRPC status codes the OTLP/HTTP error bodies carry.
const INVALID_ARGUMENT: i32 = 3;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

async fn traces(State(intake): State<Arc<Intake>>, headers: HeaderMap, body: Body) -> Response {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let encoding = match kind.as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        _ => {
            Counters::bump(&intake.counters.malformed, 1);
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/x-protobuf or application/json",
            )
                .into_response();
        }
    };
    if !intake.authorized(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) {
        return error(
            encoding,
            StatusCode::UNAUTHORIZED,
            UNAUTHENTICATED,
            "a bearer token is required",
        );
    }
    let limit = intake.max_request_bytes;
    let bad = |message: &str| {
        Counters::bump(&intake.counters.malformed, 1);
        error(encoding, StatusCode::BAD_REQUEST, INVALID_ARGUMENT, message)
    };
    let Ok(raw) = to_bytes(body, limit).await else {
        return bad(&format!(
            "the request body is over {limit} bytes, or was cut short"
        ));
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => return bad(&format!("unsupported Content-Encoding {other:?}")),
    };
    let body = if gzip {
        let mut out = Vec::new();
        let read = flate2::read::GzDecoder::new(&raw[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out);
        match read {
            Ok(n) if n <= limit => out,
            Ok(_) => return bad(&format!("the decompressed request is over {limit} bytes")),
            Err(e) => return bad(&format!("the gzip body cannot be read: {e}")),
        }
    } else {
        raw.to_vec()
    };
    let req = match encoding {
        Encoding::Protobuf => {
            ExportTraceServiceRequest::decode(&body[..]).map_err(|e| e.to_string())
        }
        Encoding::Json => {
            serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string())
        }
    };
    let req = match req {
        Ok(r) => r,
        Err(e) => return bad(&format!("not an OTLP trace request: {e}")),
    };
    match intake.take(req, body.len()) {
        Outcome::Taken(checked) => {
            let partial = (checked.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(checked.rejected).unwrap_or(i64::MAX),
                error_message: checked.reason.unwrap_or_default().to_owned(),
            });
            let body = match (encoding, partial) {
                (Encoding::Protobuf, partial_success) => {
                    ExportTraceServiceResponse { partial_success }.encode_to_vec()
                }
                // Fields left at their defaults are left out, as OTLP/JSON writes them.
                (Encoding::Json, None) => b"{}".to_vec(),
                (Encoding::Json, Some(p)) => serde_json::to_vec(&serde_json::json!({
                    "partialSuccess": {
                        "rejectedSpans": p.rejected_spans.to_string(),
                        "errorMessage": p.error_message,
                    }
                }))
                .unwrap_or_default(),
            };
            reply(encoding, StatusCode::OK, body)
        }
        Outcome::Busy => {
            let mut r = error(
                encoding,
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "the receiver is busy: retry later",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Outcome::Closed => error(
            encoding,
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "the receiver is shutting down",
        ),
    }
}
