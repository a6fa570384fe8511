//! Five `conclave-mesh-node` processes on 127.0.0.1 that know only one bootstrap address find all
//! the others, and each receives a message gossiped by any one of them.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

struct Node {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Node {
    fn start(args: &[String]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_conclave-mesh-node"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start conclave-mesh-node");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node {
            child,
            stdin,
            lines,
        }
    }

    /// Reads lines until `done` says so, or fails after `limit`.
    fn wait(&self, what: &str, limit: Duration, mut done: impl FnMut(&str) -> bool) {
        let start = Instant::now();
        loop {
            let left = limit
                .checked_sub(start.elapsed())
                .unwrap_or_else(|| panic!("timed out waiting for {what}"));
            match self.lines.recv_timeout(left) {
                Ok(line) if done(&line) => return,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        thread::sleep(Duration::from_millis(50));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(line: &str, key: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get(key)
        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
}

#[test]
fn five_processes_find_each_other_through_one_bootstrap_and_gossip() {
    let first = Node::start(&["--listen".into(), "/ip4/127.0.0.1/tcp/0".into()]);
    let mut bootstrap = String::new();
    first.wait("the first node's address", Duration::from_secs(20), |l| {
        if field(l, "event").as_deref() == Some("listening") {
            bootstrap = field(l, "addr").unwrap();
            true
        } else {
            false
        }
    });
    let mut nodes = vec![first];
    for _ in 1..5 {
        nodes.push(Node::start(&[
            "--listen".into(),
            "/ip4/127.0.0.1/tcp/0".into(),
            "--bootstrap".into(),
            bootstrap.clone(),
        ]));
    }
    for n in &nodes {
        let mut live = HashSet::new();
        n.wait("four live peers", Duration::from_secs(60), |l| {
            if field(l, "event").as_deref() == Some("live") {
                live.insert(field(l, "peer").unwrap());
            }
            live.len() == 4
        });
    }
    // Give gossipsub a moment to graft its meshes, then publish from a node that is not the
    // bootstrap node.
    thread::sleep(Duration::from_secs(2));
    writeln!(nodes[3].stdin, "publish 42").unwrap();
    for (i, n) in nodes.iter().enumerate() {
        if i != 3 {
            n.wait("the gossiped task", Duration::from_secs(30), |l| {
                field(l, "event").as_deref() == Some("task")
                    && field(l, "id").as_deref() == Some("42")
            });
        }
    }
}
