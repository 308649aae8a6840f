//! The ceiling for `tests/bench/token_bench.py`: a bare axum handler answering a POST with a
//! small JSON body, on the same runtime settings as the operator. `bench_baseline <port>`.

use axum::Router;
use axum::routing::post;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(18080);
    let app = Router::new().route(
        "/token",
        post(|| async {
            axum::Json(serde_json::json!({"access_token": "x", "token_type": "Bearer", "expires_in": 900}))
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
