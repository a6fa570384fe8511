//! `node.toml`: the node's settings, with environment overrides (`CONCLAVE_*`).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ratelimit::Limits;

/// Largest config file read.
const MAX_CONFIG: u64 = 256 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Where keys and the database live (relative paths are relative to the config file).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub network: NetworkSection,
    #[serde(default)]
    pub api: ApiSection,
    pub chain: ChainSection,
    #[serde(default)]
    pub provers: ProversSection,
}

/// What the provers that need more than the node itself read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProversSection {
    /// KZG parameters (halo2's raw format) for `halo2` tasks, relative to this file; without
    /// them the node refuses seats of `halo2` tasks.
    #[serde(default)]
    pub halo2_srs: Option<PathBuf>,
    /// W3bstream VM services for `byop` and `tee` tasks, one per VM type; without one for a
    /// task's VM type the node refuses its seats.
    #[serde(default)]
    pub byop: Vec<crate::byop::ByopEndpoint>,
    /// Whether a byop project's own `endpoint` may be called when no `[[provers.byop]]` serves
    /// its VM type (off: the project owner would choose an address this node connects to).
    #[serde(default)]
    pub allow_project_endpoints: bool,
}

impl ProversSection {
    /// The byop part, as the node takes it.
    pub fn byop_config(&self) -> crate::byop::ByopConfig {
        crate::byop::ByopConfig {
            endpoints: self.byop.clone(),
            allow_project_endpoints: self.allow_project_endpoints,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// Multiaddrs to listen on.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Peers to join through, with `/p2p/<peer id>`.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// Local-network discovery.
    #[serde(default)]
    pub mdns: bool,
    /// Short timers for nodes on one machine.
    #[serde(default)]
    pub local: bool,
    /// Dial and announce private (10.x, 192.168.x, …) and loopback addresses and DNS names that
    /// peers announce in their heartbeats: for nodes on one private network. Implied by `local`.
    #[serde(default)]
    pub private_addresses: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    #[serde(default = "default_api")]
    pub listen: SocketAddr,
    /// Requests per second one client address may make to `/v1` (bursts of one second's worth).
    #[serde(default = "default_per_client")]
    pub requests_per_client: NonZeroU32,
    /// Requests per second the node serves on `/v1` over all clients.
    #[serde(default = "default_total")]
    pub requests_total: NonZeroU32,
    /// Tasks the node opens per minute for devices (each costs the operator `openTask` and
    /// `fixSeed`); more are answered 429.
    #[serde(default = "default_openings")]
    pub task_openings_per_minute: NonZeroU32,
}

impl ApiSection {
    /// The limits the API enforces.
    pub fn limits(&self) -> Limits {
        Limits {
            per_client: self.requests_per_client,
            total: self.requests_total,
            openings_per_minute: self.task_openings_per_minute,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSection {
    /// JSON-RPC endpoint.
    pub rpc: String,
    /// The deployment's addresses file (written by `conclave-deploy`).
    pub addresses: PathBuf,
    /// Blocks on top of a published result before the node reports it.
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(".")
}
fn default_listen() -> Vec<String> {
    vec!["/ip4/0.0.0.0/tcp/4001".into()]
}
fn default_api() -> SocketAddr {
    "127.0.0.1:7001".parse().expect("valid address")
}
fn default_per_client() -> NonZeroU32 {
    Limits::default().per_client
}
fn default_total() -> NonZeroU32 {
    Limits::default().total
}
fn default_openings() -> NonZeroU32 {
    Limits::default().openings_per_minute
}
fn default_confirmations() -> u64 {
    1
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            listen: default_listen(),
            bootstrap: Vec::new(),
            mdns: false,
            local: false,
            private_addresses: false,
        }
    }
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: default_api(),
            requests_per_client: default_per_client(),
            requests_total: default_total(),
            task_openings_per_minute: default_openings(),
        }
    }
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_CONFIG} bytes")]
    TooLarge { path: String },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: &'static str, message: String },
}

impl NodeConfig {
    /// Reads `path`, applies `CONCLAVE_*` overrides and makes paths absolute.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let shown = path.display().to_string();
        let io = |source| ConfigError::Io {
            path: shown.clone(),
            source,
        };
        if std::fs::metadata(path).map_err(io)?.len() > MAX_CONFIG {
            return Err(ConfigError::TooLarge { path: shown });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let mut config = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: shown.clone(),
            message,
        })?;
        config.apply_env(|k| std::env::var(k).ok())?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.data_dir = base.join(&config.data_dir);
        config.chain.addresses = base.join(&config.chain.addresses);
        config.provers.halo2_srs = config.provers.halo2_srs.map(|p| base.join(p));
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<NodeConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// `CONCLAVE_DATA_DIR`, `CONCLAVE_LISTEN` and `CONCLAVE_BOOTSTRAP` (comma-separated),
    /// `CONCLAVE_API_LISTEN`, `CONCLAVE_CHAIN_RPC`, `CONCLAVE_CHAIN_ADDRESSES`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let list = |v: String| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        if let Some(v) = var("CONCLAVE_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = var("CONCLAVE_LISTEN") {
            self.network.listen = list(v);
        }
        if let Some(v) = var("CONCLAVE_BOOTSTRAP") {
            self.network.bootstrap = list(v);
        }
        if let Some(v) = var("CONCLAVE_API_LISTEN") {
            self.api.listen =
                v.parse()
                    .map_err(|e: std::net::AddrParseError| ConfigError::Env {
                        var: "CONCLAVE_API_LISTEN",
                        message: e.to_string(),
                    })?;
        }
        if let Some(v) = var("CONCLAVE_CHAIN_RPC") {
            self.chain.rpc = v;
        }
        if let Some(v) = var("CONCLAVE_CHAIN_ADDRESSES") {
            self.chain.addresses = v.into();
        }
        Ok(())
    }
}

/// The commented `node.toml` that `conclave init` writes.
pub fn template(api: SocketAddr, listen: &str, rpc: &str) -> String {
    format!(
        r#"# Conclave node configuration. Every value can be overridden from the environment:
# CONCLAVE_DATA_DIR, CONCLAVE_LISTEN, CONCLAVE_BOOTSTRAP, CONCLAVE_API_LISTEN,
# CONCLAVE_CHAIN_RPC, CONCLAVE_CHAIN_ADDRESSES.

# Keys (node.key, operator.json) and the database (node.redb) live here,
# relative to this file.
data_dir = "."

[network]
# Multiaddrs to listen on (TCP; add "/ip4/0.0.0.0/udp/4001/quic-v1" for QUIC).
listen = ["{listen}"]
# Peers to join through, e.g. "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW...".
bootstrap = []
# Discover peers on the local network.
mdns = false
# Fast heartbeats and timeouts, for several nodes on one machine.
local = false
# Dial private addresses (10.x, 192.168.x, loopback) and DNS names that peers announce: for
# nodes on one private network (implied by local).
private_addresses = false

[api]
# The HTTP API devices and `conclave status` use. Keep it on loopback unless it is proxied.
listen = "{api}"
# Requests per second to /v1 from one client address, and from all clients together; more
# are answered 429 with Retry-After.
requests_per_client = {per_client}
requests_total = {total}
# Tasks opened per minute for devices asking for a project with no open task (each costs the
# operator an openTask and a fixSeed transaction); more are answered 429.
task_openings_per_minute = {openings}

[chain]
# JSON-RPC endpoint of the chain the contracts are deployed on.
rpc = "{rpc}"
# The deployment's addresses, as written by conclave-deploy.
addresses = "addresses.json"
# Blocks on top of a published result before the node reports it as published.
confirmations = 1

[provers]
# KZG parameters for halo2 tasks, in halo2's raw format (from a powers-of-tau ceremony; see
# docs/provers.md). Without them this node refuses seats of halo2 tasks.
# halo2_srs = "kzg_bn254_20.srs"
#
# W3bstream VM services (conclave-prover, or W3bstream's risc0/halo2/zkwasm/wasm VMs) for byop
# and tee tasks, one per VM type (docs/provers.md). Without one this node refuses their seats.
# [[provers.byop]]
# vm_type = 4
# url = "http://127.0.0.1:50051"
# protocol = "auto"        # "vm", "vm_runtime" or "auto"
# call_timeout_secs = 60   # one call's deadline, seconds
# retries = 2              # tries again after a transport failure
#
# Call a byop project's own `endpoint` when no [[provers.byop]] serves its VM type (that
# project's owner then decides what this node signs for it; under [provers], before any
# [[provers.byop]]):
# allow_project_endpoints = false
"#,
        per_client = Limits::default().per_client,
        total = Limits::default().total,
        openings = Limits::default().openings_per_minute,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_and_env_overrides() {
        let text = template(
            "127.0.0.1:7001".parse().unwrap(),
            "/ip4/0.0.0.0/tcp/4001",
            "http://127.0.0.1:8545",
        );
        let mut c = NodeConfig::parse(&text).unwrap();
        assert_eq!(c.chain.confirmations, 1);
        assert_eq!(c.api.limits(), Limits::default());
        let zero = text.replace(
            &format!("requests_per_client = {}", Limits::default().per_client),
            "requests_per_client = 0",
        );
        assert_ne!(zero, text);
        assert!(NodeConfig::parse(&zero).is_err());
        c.apply_env(|k| match k {
            "CONCLAVE_BOOTSTRAP" => Some("/ip4/1.2.3.4/tcp/1, /ip4/5.6.7.8/tcp/2".into()),
            "CONCLAVE_API_LISTEN" => Some("127.0.0.1:9".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.network.bootstrap.len(), 2);
        assert_eq!(c.api.listen.port(), 9);
        assert!(
            c.apply_env(|k| (k == "CONCLAVE_API_LISTEN").then(|| "nope".into()))
                .is_err()
        );
        assert!(NodeConfig::parse("[chain]\nrpc = 1").is_err());
        assert!(NodeConfig::parse(&format!("{text}\nsurprise = true")).is_err());
    }
}
