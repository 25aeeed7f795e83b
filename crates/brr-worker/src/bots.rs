//! The Bots service (`google.devtools.remoteworkers.v1test2`) that BuildGrid
//! hands leases out through. bazel-remote-apis does not carry it; its few
//! messages are derived here with prost, field numbers as in Google's
//! `bots.proto` and `worker.proto`, so no protoc or build script is needed.

use brr_remote::bazel_remote_apis::google::protobuf::Any;
use brr_remote::bazel_remote_apis::google::rpc::Status;
use tonic::transport::Channel;

#[derive(Clone, PartialEq, prost::Message)]
pub struct BotSession {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub bot_id: String,
    #[prost(enumeration = "BotStatus", tag = "3")]
    pub status: i32,
    #[prost(message, optional, tag = "4")]
    pub worker: Option<Worker>,
    #[prost(message, repeated, tag = "5")]
    pub leases: Vec<Lease>,
    #[prost(string, tag = "7")]
    pub version: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Lease {
    #[prost(string, tag = "7")]
    pub id: String,
    #[prost(message, optional, tag = "8")]
    pub payload: Option<Any>,
    #[prost(message, optional, tag = "9")]
    pub result: Option<Any>,
    #[prost(enumeration = "LeaseState", tag = "2")]
    pub state: i32,
    #[prost(message, optional, tag = "3")]
    pub status: Option<Status>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Worker {
    #[prost(message, repeated, tag = "2")]
    pub properties: Vec<Property>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Property {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateBotSessionRequest {
    #[prost(string, tag = "1")]
    pub parent: String,
    #[prost(message, optional, tag = "2")]
    pub bot_session: Option<BotSession>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateBotSessionRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub bot_session: Option<BotSession>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum BotStatus {
    Unspecified = 0,
    Ok = 1,
    Unhealthy = 2,
    HostRebooting = 3,
    BotTerminating = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum LeaseState {
    Unspecified = 0,
    Pending = 1,
    Active = 2,
    Completed = 4,
    Cancelled = 5,
}

const SERVICE: &str = "/google.devtools.remoteworkers.v1test2.Bots/";

/// One unary call of the Bots service.
async fn unary<Req, Resp>(channel: Channel, method: &str, request: tonic::Request<Req>) -> Result<Resp, tonic::Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(format!("not ready: {e}")))?;
    let path: tonic::codegen::http::uri::PathAndQuery =
        format!("{SERVICE}{method}").parse().map_err(|_| tonic::Status::internal("bad method path"))?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    Ok(grpc.unary(request, path, codec).await?.into_inner())
}

pub async fn create(
    channel: Channel,
    request: tonic::Request<CreateBotSessionRequest>,
) -> Result<BotSession, tonic::Status> {
    unary(channel, "CreateBotSession", request).await
}

pub async fn update(
    channel: Channel,
    request: tonic::Request<UpdateBotSessionRequest>,
) -> Result<BotSession, tonic::Status> {
    unary(channel, "UpdateBotSession", request).await
}
