//! One reconciler per kind: `Organization`, `ClientSecret`, `NativeApp`.
