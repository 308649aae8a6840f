//! The version policy (CHANGELOG.md): the binary's `--version`, the chart's `version` and
//! `appVersion`, the image the build script tags, the `Containerfile`'s `VERSION` and the image
//! of the plain manifests in `config/` all carry the version of `Cargo.toml`; the changelog has a
//! section for it; the license file is the one `Cargo.toml` names.

use std::process::Command;

use crate::support;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn read(path: &str) -> String {
    std::fs::read_to_string(support::repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The value of a top-level `key: value` line of a YAML file (quotes removed).
fn yaml_field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().trim_matches('"').to_string())
}

#[test]
fn binary_chart_image_and_manifests_carry_the_version_of_cargo_toml() {
    let out = Command::new(env!("CARGO_BIN_EXE_centralauth-operator"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("centralauth-operator {VERSION}")
    );

    let chart = read("charts/centralauth-operator/Chart.yaml");
    assert_eq!(
        yaml_field(&chart, "version").as_deref(),
        Some(VERSION),
        "Chart.yaml version"
    );
    assert_eq!(
        yaml_field(&chart, "appVersion").as_deref(),
        Some(VERSION),
        "Chart.yaml appVersion"
    );

    let image = format!("localhost/centralauth-operator:{VERSION}");
    let script = Command::new(support::repo_root().join("tests/image/build.sh"))
        .arg("--print-image")
        .env_remove("IMAGE")
        .env_remove("IMAGE_PROFILE")
        .output()
        .unwrap();
    assert!(script.status.success(), "{}", String::from_utf8_lossy(&script.stderr));
    assert_eq!(
        String::from_utf8_lossy(&script.stdout).trim(),
        image,
        "the image build.sh tags"
    );

    let containerfile = read("Containerfile");
    assert!(
        containerfile.lines().any(|l| l == format!("ARG VERSION={VERSION}")),
        "the Containerfile's ARG VERSION is not {VERSION}"
    );

    // config/ is the chart rendered with default values: the image users get without Helm.
    let deployment = read("config/manager/deployment.yaml");
    let images: Vec<&str> = deployment
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert_eq!(images, [format!("\"{image}\"")], "config/manager/deployment.yaml");

    let changelog = read("CHANGELOG.md");
    assert!(
        changelog.lines().any(|l| l.starts_with(&format!("## [{VERSION}]"))),
        "CHANGELOG.md has no section for {VERSION}"
    );
}

#[test]
fn the_license_file_is_the_license_cargo_toml_names() {
    assert_eq!(env!("CARGO_PKG_LICENSE"), "Apache-2.0");
    let license = read("LICENSE");
    let words: Vec<&str> = license.split_whitespace().take(5).collect();
    assert_eq!(words, ["Apache", "License", "Version", "2.0,", "January"]);
    assert!(license.contains("END OF TERMS AND CONDITIONS"), "the full text");
    for file in ["SECURITY.md", "CHANGELOG.md"] {
        assert!(!read(file).trim().is_empty(), "{file} is empty");
    }
}
