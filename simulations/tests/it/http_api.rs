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
    cluster.shutdown().await;
}
