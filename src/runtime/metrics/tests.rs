use super::*;

#[test]
fn reconciles_are_counted_with_errors_and_durations() {
    let metrics = Metrics::default();
    {
        let timer = metrics.reconcile(Kind::ClientSecret);
        timer.failed("Kube");
    }
    drop(metrics.reconcile(Kind::ClientSecret));
    metrics.login(LoginMethod::password, LoginOutcome::failure);
    let text = metrics.render();
    assert!(
        text.contains("centralauth_reconciles_total{kind=\"ClientSecret\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("centralauth_reconcile_errors_total{kind=\"ClientSecret\",reason=\"Kube\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("centralauth_reconcile_duration_seconds_count{kind=\"ClientSecret\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("centralauth_logins_total{method=\"password\",outcome=\"failure\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn instrument_counts_errors_by_fixed_reason() {
    let metrics = Metrics::default();
    let r: Result<(), &str> =
        Metrics::instrument(&metrics, Kind::NativeApp, |_| "Invalid", tracing::Span::none(), async {
            Err("detail that must not leak")
        })
        .await;
    assert!(r.is_err());
    let text = metrics.render();
    assert!(text.contains("reason=\"Invalid\"} 1"), "{text}");
    assert!(!text.contains("must not leak"));
}
