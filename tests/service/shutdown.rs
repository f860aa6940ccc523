//! Graceful shutdown on a real socket: in-flight requests finish, then the pipeline's shutdown
//! hook (audit flush) runs once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use orderguard::service::Application;

use crate::support::*;

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_flushes() {
    let pipeline = Arc::new(TestPipeline::default());
    *pipeline.delay.lock().unwrap() = Some(Duration::from_millis(300));
    let app = Application::build(&insecure_config(), pipeline.clone())
        .await
        .unwrap();
    let address = app.local_addr();
    assert_ne!(address.port(), 0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let body = std::fs::read(
        shared_dir()
            .join("conformance/cds-hooks/hooks-library/order-sign-request-R4-composed.json"),
    )
    .unwrap();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::post(format!("http://{address}/cds-services/vcf-order-sign"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let in_flight = tokio::spawn(async move { client.request(request).await });

    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    assert_eq!(
        pipeline.shutdowns.load(Ordering::SeqCst),
        0,
        "not before in-flight work ends"
    );

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    let cards: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(cards["cards"].is_array());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    assert_eq!(pipeline.shutdowns.load(Ordering::SeqCst), 1);
}
