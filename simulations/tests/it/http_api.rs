//! Bad HTTP input gets the right 4xx with a JSON error, and the node keeps serving.

use conclave_node::client::Client;
use conclave_sim::Cluster;
use futures::future::join_all;

async fn status_of(r: reqwest::Response) -> (u16, serde_json::Value) {
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_and_the_node_keeps_serving() {
    let cluster = Cluster::start(3, |_| {}).await.unwrap();
    // A project that takes a single input, so its window closes after one (8 expected seats
    // over 3 nodes: every draw gives a committee).
    let project = cluster.private_average_project(8, 2, 1, 60).await.unwrap();
    let api = cluster.api(0);
    let http = reqwest::Client::new();
    let client = Client::new(api.clone());
    let task = client.task(project).await.unwrap();
    let slots = format!("{api}/v1/tasks/{}/slots", task.task_id);

    let (s, b) = status_of(
        http.post(&slots)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_json")), "{b}");

    let (s, b) = status_of(
        http.post(&slots)
            .json(&serde_json::json!({"client_key": "zz"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")), "{b}");

    let (s, b) = status_of(
        http.post(&slots)
            .json(&serde_json::json!({"client_key": 7}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 422, "wrong field type: {b}");

    let (s, _) = status_of(
        http.post(format!("{api}/v1/tasks/not-hex/slots"))
            .json(&serde_json::json!({"client_key": hex::encode([1u8; 32])}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);

    let (s, b) = status_of(
        http.get(format!("{api}/v1/projects/999/task"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (404, Some("not_found")), "{b}");

    let (s, b) = status_of(
        http.post(format!("{api}/v1/tasks/{}/slots", hex::encode([9u8; 32])))
            .json(&serde_json::json!({"client_key": hex::encode([1u8; 32])}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (404, Some("not_found")), "{b}");

    let huge = serde_json::json!({"client_key": "a".repeat(300_000)});
    let (s, b) = status_of(http.post(&slots).json(&huge).send().await.unwrap()).await;
    assert_eq!((s, b["error"].as_str()), (413, Some("too_large")), "{b}");

    // The one input is accepted; the window is then closed.
    client.submit_to(&task, 5).await.unwrap();
    let (s, b) = status_of(
        http.post(&slots)
            .json(&serde_json::json!({"client_key": hex::encode([1u8; 32])}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (409, Some("closed")), "{b}");

    // A flood is answered 429 before the node is overwhelmed.
    let status = format!("{api}/v1/tasks/{}", task.task_id);
    let flood = (0..1200).map(|_| http.get(&status).send());
    let answers: Vec<reqwest::Response> = join_all(flood)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let codes: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    let refused = answers
        .into_iter()
        .find(|r| r.status() == 429)
        .unwrap_or_else(|| panic!("no 429 among {} requests", codes.len()));
    assert_eq!(
        refused.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let (_, b) = status_of(refused).await;
    assert_eq!(b["error"].as_str(), Some("rate_limited"), "{b}");
    assert!(codes.iter().all(|c| [200, 429].contains(c)));

    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (s, b) = status_of(http.get(format!("{api}/health")).send().await.unwrap()).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("ok")));
    let (s, _) = status_of(
        http.get(format!("{api}/no/such/route"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    // A project the registered stake cannot seat (32 seats needed; 3 nodes of 10 units each,
    // every one of which wins): the device is told so with a 409, not a gateway error.
    let unseatable = cluster
        .private_average_project(32, 32, 1, 60)
        .await
        .unwrap();
    let (s, b) = status_of(
        http.get(format!("{api}/v1/projects/{unseatable}/task"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (409, Some("no_committee")), "{b}");
    // The scrape is one valid OpenMetrics exposition (the node's and libp2p's families).
    let scrape = http.get(format!("{api}/metrics")).send().await.unwrap();
    assert_eq!(
        scrape.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/openmetrics-text; version=1.0.0; charset=utf-8"[..])
    );
    let metrics = scrape.text().await.unwrap();
    assert_openmetrics(&metrics);
    cluster.shutdown().await;
}

/// Checks `text` against the OpenMetrics text format as a strict parser reads it: metadata
/// (`# TYPE`, `# HELP`, `# UNIT`) once per family and before its samples, a family's samples
/// together, sample names of their family (with the type's suffixes), numeric values, and one
/// `# EOF`, last.
fn assert_openmetrics(text: &str) {
    let body = text
        .strip_suffix("# EOF\n")
        .unwrap_or_else(|| panic!("/metrics must end with `# EOF`:\n{text}"));
    assert!(!body.contains("# EOF"), "more than one `# EOF`:\n{text}");
    let mut types: std::collections::HashMap<String, String> = Default::default();
    let mut finished: std::collections::HashSet<String> = Default::default();
    let mut current: Option<String> = None;
    for line in body.lines() {
        let family = if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(
                matches!(kind, "TYPE" | "HELP" | "UNIT") && !name.is_empty(),
                "bad metadata line {line:?}"
            );
            if kind == "TYPE" {
                let t = parts.next().unwrap_or("").to_string();
                assert!(
                    types.insert(name.to_string(), t).is_none(),
                    "family {name} declared twice"
                );
            }
            name.to_string()
        } else {
            let name_end = line
                .find(['{', ' '])
                .expect("a sample has a name and a value");
            let name = &line[..name_end];
            let value = line[name_end..]
                .rsplit_once('}')
                .map_or(&line[name_end..], |(_, v)| v)
                .split_whitespace()
                .next()
                .expect("a sample value");
            assert!(
                value.parse::<f64>().is_ok() || matches!(value, "+Inf" | "-Inf" | "NaN"),
                "bad sample value in {line:?}"
            );
            types
                .keys()
                .filter(|f| {
                    name == f.as_str()
                        || name.strip_prefix(f.as_str()).is_some_and(|s| {
                            ["_total", "_created", "_bucket", "_count", "_sum", "_info"]
                                .contains(&s)
                        })
                })
                .max_by_key(|f| f.len())
                .unwrap_or_else(|| panic!("sample {name} of no declared family"))
                .clone()
        };
        if current.as_deref() != Some(family.as_str()) {
            assert!(
                !finished.contains(&family),
                "family {family} is split in two places"
            );
            if let Some(done) = current.replace(family.clone()) {
                finished.insert(done);
            }
        }
    }
    assert!(!types.is_empty(), "no metric families:\n{text}");
}
