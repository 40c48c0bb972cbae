//! The HTTP client of `submit`, `status`, `results` and `cancel`: the coordinator's
//! address and token, and JSON requests whose errors carry the server's explanation.

use crate::local::{DEFAULT_ADDRESS, data_dir};
use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;

/// Where the coordinator is and how to prove we may use it.
#[derive(Args, Clone)]
pub struct Connection {
    /// The coordinator's address (http://HOST:PORT or HOST:PORT).
    #[arg(long, default_value = DEFAULT_ADDRESS)]
    to: String,
    /// The bearer token; else $WASMHIVE_TOKEN; else the `token` file in the data directory.
    #[arg(long)]
    token: Option<String>,
    /// The local data directory (where a local coordinator keeps its token).
    #[arg(long)]
    data: Option<PathBuf>,
}

pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Connection {
    pub fn client(&self) -> anyhow::Result<Client> {
        let (base, token) = self.base_and_token()?;
        Ok(Client { base, token, agent: agent() })
    }

    /// `http://HOST:PORT` and the token to use there.
    pub fn base_and_token(&self) -> anyhow::Result<(String, String)> {
        let address = self.to.trim_end_matches('/');
        let base =
            if address.starts_with("http://") { address.to_string() } else { format!("http://{address}") };
        Ok((base, self.resolve_token()?))
    }

    fn resolve_token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        if let Ok(token) = std::env::var("WASMHIVE_TOKEN") {
            return Ok(token);
        }
        let path = data_dir(self.data.clone()).join("token");
        match std::fs::read_to_string(&path) {
            Ok(token) => Ok(token.trim().to_string()),
            Err(_) => bail!(
                "no token: pass --token, set WASMHIVE_TOKEN, or run on the coordinator's machine (it keeps the token in {})",
                path.display()
            ),
        }
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

/// An agent that hands back error answers, so their explanation can be shown.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

impl Client {
    /// A client of a worker's local control endpoint.
    pub fn local(address: &str, token: &str) -> Client {
        Client { base: format!("http://{address}"), token: token.to_string(), agent: agent() }
    }

    /// `GET` or `POST` (empty body) answering JSON.
    pub fn request<T: DeserializeOwned>(&self, method: &str, path: &str) -> anyhow::Result<T> {
        if method == "POST" {
            return self.post(path, &serde_json::json!({}));
        }
        self.get(path)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self.agent.get(self.url(path)).header("Authorization", self.bearer()).call();
        read_json(response, &self.url(path))
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<T> {
        let response = self.agent.post(self.url(path)).header("Authorization", self.bearer()).send_json(body);
        read_json(response, &self.url(path))
    }

    /// A streamed text answer (JSON Lines), line by line.
    pub fn get_lines(
        &self,
        path: &str,
    ) -> anyhow::Result<impl Iterator<Item = std::io::Result<String>> + use<>> {
        use std::io::BufRead;
        let url = self.url(path);
        let response = self.agent.get(&url).header("Authorization", self.bearer()).call();
        let response = check(response, &url)?;
        if !response.status().is_success() {
            bail!("the coordinator refused ({}) {url}", response.status());
        }
        Ok(std::io::BufReader::new(response.into_body().into_reader()).lines())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

fn check(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    url: &str,
) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
    match response {
        Ok(response) => Ok(response),
        Err(ureq::Error::StatusCode(code)) => bail!("{url}: HTTP {code}"),
        Err(error) => {
            Err(error).with_context(|| format!("cannot reach the coordinator at {url}; is it running?"))
        }
    }
}

fn read_json<T: DeserializeOwned>(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    url: &str,
) -> anyhow::Result<T> {
    let mut response = check(response, url)?;
    let status = response.status();
    let text =
        response.body_mut().read_to_string().with_context(|| format!("reading the answer of {url}"))?;
    if !status.is_success() {
        let message =
            serde_json::from_str::<wasmhive_protocol::api::ApiError>(&text).map_or(text, |error| error.error);
        bail!("the coordinator refused ({status}): {message}");
    }
    serde_json::from_str(&text)
        .with_context(|| format!("{url} answered something that is not the expected JSON"))
}
