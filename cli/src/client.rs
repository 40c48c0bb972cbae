//! The HTTP client of `submit`, `status`, `results`, `cancel` and the other API commands.
//!
//! It speaks HTTP/1.1 over TLS to the owner's one public port, proving nothing itself (API
//! clients are anonymous; the token authorises them) and checking the owner's key: pinned
//! with `--to HOST:PORT#PEERID`, else the one recorded in `DATA/known_hosts` on first use.
//! The token on this machine (`DATA/token`) is sent only to the owner whose key is this
//! machine's (`DATA/peer.key`); another owner needs `--token` or `WASMHIVE_TOKEN`.
//! Errors carry the server's explanation.

use crate::local::{DEFAULT_ADDRESS, data_dir};
use anyhow::{Context, bail};
use clap::Args;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use wasmhive_protocol::Hash;
use wasmhive_transport::{Dialer, KnownHosts, PeerAddress, load_or_create_peer_key};

/// Where the owner is and how to prove we may use it.
#[derive(Args, Clone)]
pub struct Connection {
    /// The owner's address: HOST:PORT, or HOST:PORT#PEERID to pin its key.
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    to: String,
    /// The bearer token; else $WASMHIVE_TOKEN; else, for the owner on this machine only,
    /// the `token` file in the data directory.
    #[arg(long)]
    token: Option<String>,
    /// The local data directory (the local owner's token and key, and known hosts).
    #[arg(long)]
    data: Option<PathBuf>,
}

pub struct Client {
    target: Target,
    /// `--token` or `$WASMHIVE_TOKEN`: sent to whichever owner answers.
    explicit_token: Option<String>,
    data_dir: PathBuf,
    runtime: tokio::runtime::Runtime,
}

enum Target {
    /// A loopback plain-HTTP endpoint of this machine (a worker's control endpoint).
    Plain(String),
    Tls {
        address: PeerAddress,
        dialer: Dialer,
    },
}

impl Connection {
    pub fn client(&self) -> anyhow::Result<Client> {
        let address = PeerAddress::parse(&self.to)?;
        let data_dir = data_dir(self.data.clone());
        let explicit_token = self.token.clone().or_else(|| std::env::var("WASMHIVE_TOKEN").ok());
        let dialer = Dialer::new(None, Some(KnownHosts::in_data_dir(&data_dir)));
        Ok(Client { target: Target::Tls { address, dialer }, explicit_token, data_dir, runtime: runtime()? })
    }
}

/// Prints `rows` as pretty JSON and returns true when `json` is set; otherwise the caller
/// prints its table.
pub fn printed_as_json<T: Serialize>(rows: &T, json: bool) -> anyhow::Result<bool> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
    }
    Ok(json)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

impl Client {
    /// A client of a worker's local control endpoint (plain HTTP on loopback).
    pub fn local(address: &str, token: &str) -> anyhow::Result<Client> {
        Ok(Client {
            target: Target::Plain(address.to_string()),
            explicit_token: Some(token.to_string()),
            data_dir: PathBuf::new(),
            runtime: runtime()?,
        })
    }

    /// `GET` or `POST` (empty body) answering JSON.
    pub fn request<T: DeserializeOwned>(&self, method: &str, path: &str) -> anyhow::Result<T> {
        if method == "POST" {
            return self.post(path, &serde_json::json!({}));
        }
        self.get(path)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.runtime.block_on(async {
            let (status, body) = self.send("GET", path, None).await?;
            read_json(status, body, path).await
        })
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        self.post_json(path, serde_json::to_vec(body)?)
    }

    /// `POST` of a JSON body already encoded, answering JSON.
    pub fn post_json<T: DeserializeOwned>(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<T> {
        self.runtime.block_on(async {
            let (status, body) = self.send("POST", path, Some(bytes)).await?;
            read_json(status, body, path).await
        })
    }

    /// Whether the owner has the blob `hash`.
    pub fn has_blob(&self, hash: &Hash) -> anyhow::Result<bool> {
        let path = format!("/api/blobs/{}", hash.to_hex());
        self.runtime.block_on(async {
            let (status, body) = self.send("HEAD", &path, None).await?;
            match status.as_u16() {
                200 => Ok(true),
                404 => Ok(false),
                _ => bail!("the owner refused ({status}): {}", api_message(collect_text(body).await?)),
            }
        })
    }

    /// Uploads the blob `hash` (its bytes).
    pub fn put_blob(&self, hash: &Hash, bytes: Vec<u8>) -> anyhow::Result<()> {
        let path = format!("/api/blobs/{}", hash.to_hex());
        self.runtime.block_on(async {
            let (status, body) = self.send("PUT", &path, Some(bytes)).await?;
            let text = collect_text(body).await?;
            if !status.is_success() {
                bail!("the owner refused ({status}): {}", api_message(text));
            }
            Ok(())
        })
    }

    /// Writes the blob `blob` from the owner into `writer` as it arrives, checking its size
    /// and hash (an owner's bytes are verified like a peer's).
    pub fn download_blob(
        &self,
        blob: &wasmhive_protocol::BlobRef,
        writer: &mut impl std::io::Write,
    ) -> anyhow::Result<()> {
        let path = format!("/api/blobs/{}", blob.hash.to_hex());
        self.runtime.block_on(async {
            let (status, mut body) = self.send("GET", &path, None).await?;
            if !status.is_success() {
                bail!("the owner refused ({status}): {}", api_message(collect_text(body).await?));
            }
            let (mut hasher, mut received) = (blake3::Hasher::new(), 0u64);
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.context("reading a blob from the owner")?.into_data() else { continue };
                received += data.len() as u64;
                if received > blob.size {
                    bail!("the owner sent more than the {} bytes of blob {}", blob.size, blob.hash.short());
                }
                hasher.update(&data);
                writer.write_all(&data)?;
            }
            if received != blob.size || wasmhive_protocol::Hash::from(hasher.finalize()) != blob.hash {
                bail!(
                    "the owner sent {received} bytes that are not blob {} ({} bytes); try again",
                    blob.hash.short(),
                    blob.size
                );
            }
            Ok(())
        })
    }

    /// A streamed text answer (JSON Lines), line by line.
    pub fn get_lines(
        &self,
        path: &str,
    ) -> anyhow::Result<impl Iterator<Item = std::io::Result<String>> + '_> {
        let (status, body) = self.runtime.block_on(self.send("GET", path, None))?;
        if !status.is_success() {
            let text = self.runtime.block_on(collect_text(body))?;
            bail!("the owner refused ({status}): {}", api_message(text));
        }
        Ok(Lines { client: self, body, buffer: Vec::new(), done: false })
    }

    /// Sends one request on a new connection. Over TLS the owner's key is checked first,
    /// and the local token is attached only if the owner is this machine's.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<(hyper::StatusCode, Incoming)> {
        match &self.target {
            Target::Plain(address) => {
                let stream = tokio::net::TcpStream::connect(address)
                    .await
                    .with_context(|| format!("cannot reach {address}; is it running?"))?;
                let token = self.explicit_token.clone().unwrap_or_default();
                exchange(stream, address, method, path, &token, body).await
            }
            Target::Tls { address, dialer } => {
                let (stream, owner_id) = dialer.dial(address).await.map_err(|error| {
                    anyhow::anyhow!("cannot reach the owner at {address}: {error}; is it running?")
                })?;
                let token = self.token_for(&owner_id, address)?;
                exchange(stream, &address.host_port, method, path, &token, body).await
            }
        }
    }

    fn token_for(&self, owner_id: &str, address: &PeerAddress) -> anyhow::Result<String> {
        if let Some(token) = &self.explicit_token {
            return Ok(token.clone());
        }
        let key_path = self.data_dir.join("peer.key");
        let token_path = self.data_dir.join("token");
        let local_owner = key_path.exists().then(|| load_or_create_peer_key(&self.data_dir)).transpose()?;
        match local_owner {
            Some(key) if key.peer_id() == owner_id => std::fs::read_to_string(&token_path)
                .map(|token| token.trim().to_string())
                .with_context(|| format!("the local owner's token {} is unreadable", token_path.display())),
            Some(key) => bail!(
                "the owner at {address} is peer {owner_id}, not this machine's owner ({}, in {}): the local \
                 token is sent only to it; pass the other owner's token with --token or WASMHIVE_TOKEN",
                key.peer_id(),
                self.data_dir.display()
            ),
            None => bail!(
                "no token for the owner at {address}: pass --token or set WASMHIVE_TOKEN, or run on the \
                 owner's machine (it keeps the token in {})",
                token_path.display()
            ),
        }
    }
}

async fn exchange<S>(
    stream: S,
    host: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<(hyper::StatusCode, Incoming)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    if body.is_some() {
        let blob = path.starts_with("/api/blobs/");
        let content_type = if blob { "application/octet-stream" } else { "application/json" };
        request = request.header(hyper::header::CONTENT_TYPE, content_type);
    }
    let request = request.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let response = sender.send_request(request).await.with_context(|| format!("sending {method} {path}"))?;
    Ok((response.status(), response.into_body()))
}

/// Largest JSON answer read whole from an owner (a stranger may answer without end).
const ANSWER_BYTES_MAX: usize = 64 << 20;
/// Longest line of a streamed answer (one unit's result, output base64-encoded).
const LINE_BYTES_MAX: usize = 128 << 20;

async fn collect_text(body: Incoming) -> anyhow::Result<String> {
    let bytes = http_body_util::Limited::new(body, ANSWER_BYTES_MAX)
        .collect()
        .await
        .map_err(|error| {
            anyhow::anyhow!("reading the owner's answer (at most {} MiB): {error}", ANSWER_BYTES_MAX >> 20)
        })?
        .to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn api_message(text: String) -> String {
    serde_json::from_str::<wasmhive_protocol::api::ApiError>(&text).map_or(text, |error| error.error)
}

async fn read_json<T: DeserializeOwned>(
    status: hyper::StatusCode,
    body: Incoming,
    path: &str,
) -> anyhow::Result<T> {
    let text = collect_text(body).await?;
    if !status.is_success() {
        bail!("the owner refused ({status}): {}", api_message(text));
    }
    serde_json::from_str(&text)
        .with_context(|| format!("{path} answered something that is not the expected JSON"))
}

/// The lines of a streamed body, read frame by frame.
struct Lines<'a> {
    client: &'a Client,
    body: Incoming,
    buffer: Vec<u8>,
    done: bool,
}

impl Iterator for Lines<'_> {
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Some(Ok(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned()));
            }
            if self.done {
                if self.buffer.is_empty() {
                    return None;
                }
                let rest = std::mem::take(&mut self.buffer);
                return Some(Ok(String::from_utf8_lossy(&rest).into_owned()));
            }
            match self.client.runtime.block_on(self.body.frame()) {
                None => self.done = true,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                    if self.buffer.len() > LINE_BYTES_MAX {
                        self.done = true;
                        self.buffer.clear();
                        let limit = LINE_BYTES_MAX >> 20;
                        return Some(Err(std::io::Error::other(format!(
                            "the owner sent a line over {limit} MiB"
                        ))));
                    }
                }
                Some(Err(error)) => return Some(Err(std::io::Error::other(error))),
            }
        }
    }
}
