//! Starting and stopping a local anvil (from npm `@foundry-rs/anvil`, installed into `.tools/` by
//! the README's test command) on 127.0.0.1 with a port of its own choosing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Errors when starting anvil.
#[derive(Debug, thiserror::Error)]
pub enum AnvilError {
    #[error(
        "anvil not found: set CONCLAVE_ANVIL or run chain/scripts/install-tools (scripts/test does)"
    )]
    NotFound,
    #[error("could not start {path}: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("anvil did not report a listening address within {0:?}")]
    NoAddress(Duration),
}

/// A running anvil; dropping it stops the process.
pub struct Anvil {
    child: Child,
    url: String,
}

impl Anvil {
    /// Where anvil is: `$CONCLAVE_ANVIL`, else `.tools/bin/anvil` in this directory or above.
    pub fn locate() -> Result<PathBuf, AnvilError> {
        if let Some(path) = std::env::var_os("CONCLAVE_ANVIL") {
            return Ok(PathBuf::from(path));
        }
        let here = std::env::current_dir().map_err(|_| AnvilError::NotFound)?;
        here.ancestors()
            .map(|dir| dir.join(".tools/bin/anvil"))
            .find(|p| p.is_file())
            .ok_or(AnvilError::NotFound)
    }

    /// Starts the anvil found by [`Anvil::locate`].
    pub fn start() -> Result<Self, AnvilError> {
        Self::start_at(&Self::locate()?)
    }

    /// Starts `binary` on 127.0.0.1, on a free port that anvil picks and reports.
    pub fn start_at(binary: &Path) -> Result<Self, AnvilError> {
        const WAIT: Duration = Duration::from_secs(60);
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0", "--accounts", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| AnvilError::Spawn {
                path: binary.to_path_buf(),
                source,
            })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout so anvil never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.trim().strip_prefix("Listening on ") {
                    let _ = tx.send(address.to_string());
                }
            }
        });
        match rx.recv_timeout(WAIT) {
            Ok(address) => Ok(Anvil {
                child,
                url: format!("http://{address}"),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(AnvilError::NoAddress(WAIT))
            }
        }
    }

    /// The JSON-RPC endpoint, e.g. `http://127.0.0.1:38211`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
