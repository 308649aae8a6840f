//! The login page's theme: colours and layouts rendered with CSS only, refused at apply when
//! malformed; headless Chromium (playwright-core) saves the page in two themes and layouts to
//! `tests/artifacts/theme-*.png` (the image URL does not load here: no network).

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use centralauth_operator::crd::Organization;

use crate::oauth_attacks::authorize;
use crate::oauth_clients::node;
use crate::support::oauth::Server;

#[tokio::test]
async fn theme_two_themes_in_two_layouts_are_rendered_and_bad_colours_are_refused_at_apply() {
    let server = Server::start("theme").await;
    let forest = json!({"theme": {"primaryColor": "#0a7d4f", "backgroundColor": "#dfeee6",
        "contentColor": "#ffffff", "neutralColor": "#1d2b24", "loginPageLayout": "FullLeft",
        "imageUrl": "https://images.example.com/forest.jpg"}});
    let night = json!({"theme": {"primaryColor": "#f59e0b", "backgroundColor": "#111827",
        "contentColor": "#1f2937", "neutralColor": "#e5e7eb", "loginPageLayout": "AlignRight",
        "loginBlockLayout": "Compact"}});
    let a = server.tenant("forest", forest, &[("ann@example.com", "pw")]).await;
    let b = server.tenant("night", night, &[("ann@example.com", "pw")]).await;
    let html = server.http(&[]).get(authorize(&a, &[])).send().await.unwrap();
    assert_eq!(html.status(), 200);
    let html = html.text().await.unwrap();
    assert!(html.contains("--primary:#0a7d4f") && html.contains(r#"<img src="https://images.example.com/forest.jpg""#));
    assert!(!html.contains("<script"), "CSS only");

    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shots: Vec<_> = [
        ("theme-forest-fullleft.png", &a),
        ("theme-night-alignright-compact.png", &b),
    ]
    .iter()
    .map(|(name, t)| json!({"url": authorize(t, &[]), "path": artifacts.join(name)}))
    .collect();
    let out = node("screenshot.mjs", &json!({"shots": shots})).await;
    assert_eq!(out["statuses"], json!([200, 200]), "{out}");
    for shot in &shots {
        let path = shot["path"].as_str().unwrap();
        assert!(std::fs::metadata(path).unwrap().len() > 1000, "{path} was written");
    }

    let orgs: Api<Organization> = Api::namespaced(server.client.clone(), &server.ns);
    for (field, value) in [
        ("primaryColor", "red"),
        ("backgroundColor", "#12345"),
        ("imageUrl", "http://x.example/a.png"),
    ] {
        let patch = json!({"spec": {"theme": {field: value}}});
        let err = orgs
            .patch("forest", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err("refused at apply");
        assert!(err.to_string().contains(field), "{err}");
    }
    let layout = json!({"spec": {"theme": {"loginPageLayout": "Sideways"}}});
    let err = orgs
        .patch("forest", &PatchParams::default(), &Patch::Merge(&layout))
        .await
        .expect_err("an unknown layout");
    assert!(err.to_string().contains("loginPageLayout"), "{err}");
}
