//! The JSON-RPC backend retries a transaction the endpoint refused for a nonce or fee race: a
//! proxy in front of a real anvil refuses the first raw transaction with "nonce too low".

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use alloy::primitives::U256;
use axum::Json;
use axum::extract::State;
use axum::routing::post;
use conclave_chain::anvil::Anvil;
use conclave_chain::backend::TxRequest;
use conclave_chain::{Chain, ChainError, DevChain, RpcChain};
use serde_json::{Value, json};

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    /// Raw transactions seen, and how many to refuse first.
    sends: Arc<AtomicUsize>,
    refuse: usize,
    message: &'static str,
}

async fn relay(State(p): State<Proxy>, Json(body): Json<Value>) -> Json<Value> {
    if body["method"] == "eth_sendRawTransaction"
        && p.sends.fetch_add(1, Ordering::SeqCst) < p.refuse
    {
        return Json(json!({
            "jsonrpc": "2.0",
            "id": body["id"],
            "error": { "code": -32000, "message": p.message },
        }));
    }
    let answer = p.http.post(&p.upstream).json(&body).send().await.unwrap();
    Json(answer.json().await.unwrap())
}

async fn through_proxy(
    anvil: &Anvil,
    refuse: usize,
    message: &'static str,
) -> (RpcChain, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let sends = Arc::new(AtomicUsize::new(0));
    let proxy = Proxy {
        upstream: anvil.url().to_string(),
        http: reqwest::Client::new(),
        sends: sends.clone(),
        refuse,
        message,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/", post(relay))
        .with_state(proxy);
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (RpcChain::connect(&url).await.unwrap(), sends, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonce_races_are_retried_and_other_refusals_are_not() {
    let anvil = Anvil::start().expect("anvil (scripts/test installs it)");
    let key = support::key(1);
    let to = support::key(2).address();
    let payment = TxRequest {
        to: Some(to),
        data: Default::default(),
        value: U256::from(1000),
    };

    let (chain, sends, server) = through_proxy(&anvil, 1, "nonce too low").await;
    chain
        .set_balance(key.address(), U256::from(10u64).pow(U256::from(18)))
        .await
        .unwrap();
    chain
        .send(&key, payment.clone())
        .await
        .expect("sent on the second try");
    assert_eq!(
        sends.load(Ordering::SeqCst),
        2,
        "refused once, then accepted"
    );
    assert_eq!(chain.balance(to).await.unwrap(), U256::from(1000));
    server.abort();

    let (chain, sends, server) = through_proxy(&anvil, 1, "insufficient funds for gas").await;
    let refused = chain.send(&key, payment).await.unwrap_err();
    assert!(
        matches!(refused, ChainError::Rejected(ref m) if m.contains("insufficient")),
        "{refused:?}"
    );
    assert_eq!(sends.load(Ordering::SeqCst), 1, "not retried");
    server.abort();
}
