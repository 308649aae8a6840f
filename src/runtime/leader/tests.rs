use super::*;

fn config(retry: u64, renew: u64, duration: u64) -> LeaseConfig {
    LeaseConfig {
        name: "l".into(),
        namespace: "n".into(),
        identity: "me".into(),
        duration: Duration::from_secs(duration),
        renew_deadline: Duration::from_secs(renew),
        retry_period: Duration::from_secs(retry),
    }
}

#[test]
fn timings_must_be_ordered() {
    assert!(config(2, 10, 15).validate().is_ok());
    assert!(config(2, 15, 15).validate().is_err());
    assert!(config(10, 10, 15).validate().is_err());
    assert!(config(0, 10, 15).validate().is_err());
    let mut c = config(1, 2, 3);
    c.duration = Duration::from_millis(3500);
    assert_eq!(c.validate(), Err(LeaseConfigError::Duration(c.duration)));
}

#[test]
fn identities_are_unique_per_process_start() {
    let a = identity(Some("pod-0"));
    let b = identity(Some("pod-0"));
    assert!(a.starts_with("pod-0_"));
    assert_ne!(a, b);
}
