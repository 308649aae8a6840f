//! Reconciler of `NativeApp`.

use std::sync::Arc;

use super::Context;

/// Runs this controller until the future is dropped.
pub async fn run(_ctx: Arc<Context>) {}
