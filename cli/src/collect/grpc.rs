//! OTLP/gRPC: the `TraceService/Export` method, and the status of requests tonic refuses
//! before it.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::intake::{Intake, Outcome};

pub(super) struct Traces(pub(super) Arc<Intake>);

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let intake = &self.0;
        let auth = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes().to_vec());
        if !intake.authorized(auth.as_deref()) {
            return Err(Status::unauthenticated("a bearer token is required"));
        }
        let req = request.into_inner();
        let size = req.encoded_len();
        match intake.take(req, size) {
            Outcome::Taken(checked) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: (checked.rejected > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: i64::try_from(checked.rejected).unwrap_or(i64::MAX),
                    error_message: checked.reason.unwrap_or_default().to_owned(),
                }),
            })),
            Outcome::Busy => Err(Status::unavailable("the receiver is busy: retry later")),
            Outcome::Closed => Err(Status::unavailable("the receiver is shutting down")),
        }
    }
}

/// tonic answers an undecodable or oversized request itself, with INTERNAL, OUT_OF_RANGE or
/// RESOURCE_EXHAUSTED (the second retryable under OTLP's rules). `export` never answers those
/// codes, so they become INVALID_ARGUMENT: the sender drops the request instead of retrying
/// it, as the specification asks of a malformed one.
pub(super) fn refused_as_invalid(
    intake: &Intake,
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let code = response.headers().get("grpc-status").map(|v| v.as_bytes());
    if matches!(code, Some(b"8" | b"11" | b"13")) {
        super::intake::Counters::bump(&intake.counters.malformed, 1);
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("3"));
    }
    response
}
