//! The `conclave-prover` binary as an operator runs it: it says where it listens, serves both
//! W3bstream protocol versions to the byop client, and exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use conclave_provers::byop::{ByopClient, EndpointConfig, ProjectCode, Protocol, TaskCall};

#[tokio::test]
async fn the_prover_binary_serves_both_protocols_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_conclave-prover"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .strip_prefix("conclave-prover listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();

    let module = wat::parse_str(include_str!("../../examples/wasm/sum.wat")).unwrap();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&module).unwrap();
    let binary = z.finish().unwrap();
    let code = ProjectCode {
        project_id: 3,
        version: "1.0".into(),
        hash: *blake3::hash(&binary).as_bytes(),
        binary,
        param: String::new(),
    };
    for protocol in [Protocol::Vm, Protocol::VmRuntime] {
        let client = ByopClient::new(EndpointConfig {
            protocol,
            ..EndpointConfig::new(format!("http://{address}"))
        })
        .unwrap();
        client.health().await.unwrap();
        let answer = client
            .execute(
                &code,
                &TaskCall {
                    task_id: [9; 32],
                    payloads: vec![b"11111111".to_vec(), b"22222222".to_vec()],
                },
            )
            .await
            .unwrap();
        let expected =
            i64::from_le_bytes(*b"11111111").wrapping_add(i64::from_le_bytes(*b"22222222"));
        assert_eq!(answer.result, expected.to_le_bytes(), "{protocol:?}");
    }

    // SIGTERM: a clean exit.
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("conclave-prover did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}
