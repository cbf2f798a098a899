//! The command line's HTTP client of a running service: where it is (`--url`, else
//! `ORCH_BIND`), the operator token (`--token`, else `ORCH_OPERATOR_TOKEN` from the
//! environment or `.env`), and errors that name the request, the status and the service's
//! own message.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::config::Config;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one service.
pub struct Client {
    /// `http://host:port`, without a trailing slash.
    base: String,
    /// The operator token, when one is configured or given.
    token: Option<String>,
    /// The HTTP client.
    http: reqwest::Client,
}

impl Client {
    /// A client for `url` (else the configured bind address) with `token` (else the
    /// configured operator token).
    pub fn new(config: &Config, url: Option<&str>, token: Option<&str>) -> anyhow::Result<Self> {
        let base = url
            .map(str::to_string)
            .unwrap_or_else(|| format!("http://{}", config.bind));
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url {base:?} must start with http:// or https://");
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            base,
            token: token
                .map(str::to_string)
                .or_else(|| config.operator_token.clone()),
            http,
        })
    }

    /// GETs `path` and returns its JSON reply.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, None, false).await
    }

    /// POSTs `body` to an operator route (Bearer token) and returns its JSON reply.
    pub async fn operator_post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, path, Some(body), true).await
    }

    /// POSTs `body` to an open route and returns its JSON reply.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, path, Some(body), false).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        operator: bool,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.clone(), &url);
        if operator {
            let Some(token) = self.token.as_deref() else {
                bail!(
                    "{method} {path} needs the operator token: set ORCH_OPERATOR_TOKEN (in the \
                     environment or .env) or pass --token"
                );
            };
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the orchestrator at {} (is it running? set ORCH_BIND or pass --url)",
                self.base
            )
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("{method} {url}: the reply broke off"))?;
        let reply: Value = serde_json::from_str(&text)
            .with_context(|| format!("{method} {url} answered {status} without JSON"))?;
        if !status.is_success() {
            let message = reply["error"].as_str().unwrap_or("no error message");
            let hint = if status == StatusCode::UNAUTHORIZED {
                " (check --token or ORCH_OPERATOR_TOKEN)"
            } else {
                ""
            };
            bail!("{method} {url} answered {status}: {message}{hint}");
        }
        Ok(reply)
    }
}
