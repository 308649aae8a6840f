//! The container image: `tests/image/build.sh` packages the binary this suite built (the debug
//! build links the same libraries as the release build) into `scratch`, once per test process.
//! The image holds nothing but the binary, its libraries, the CA bundle and the passwd entry:
//! the test lists the OCI archive users get, and checks the image configuration against the
//! `Containerfile`. [`crate::image_run`] runs it.
//!
//! Podman needs two settings on this machine kind, both about the sandbox rather than the image
//! (docs/image.md): the `runc` runtime, and no default ulimits (a containers.conf
//! in the scratch directory, passed as `CONTAINERS_CONF`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{Value, json};

use crate::support;

/// The version of Cargo.toml: the image's tag and label.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const BINARY: &str = env!("CARGO_BIN_EXE_centralauth-operator");
const IN_IMAGE: &str = "usr/local/bin/centralauth-operator";
const PASSWD: &str = "nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n";

/// The image tests/image/build.sh built, once per test process.
pub struct Built {
    /// Its image ID.
    pub id: String,
    /// The OCI archive.
    pub archive: PathBuf,
}

/// The name the tests give the image: one per checkout, so test runs of two checkouts on one
/// machine never replace (and remove) each other's image, and a release image built there is
/// never replaced either.
fn test_image_name() -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    support::repo_root().hash(&mut hasher);
    format!(
        "localhost/centralauth-operator:{VERSION}-test-{:08x}",
        hasher.finish() as u32
    )
}

/// Builds the image from the suite's binary on first use.
pub fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let started = Instant::now();
        let name = test_image_name();
        let out = Command::new(support::repo_root().join("tests/image/build.sh"))
            .args(["--debug", "--binary", BINARY])
            .env("IMAGE", &name)
            .output()
            .expect("run tests/image/build.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "tests/image/build.sh failed:\n{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{stdout}(built in {:?})", started.elapsed());
        let field = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("build.sh printed no {key}=:\n{stdout}"))
                .to_string()
        };
        assert_eq!(field("image"), name);
        Built {
            id: field("id"),
            archive: support::repo_root().join(field("archive")),
        }
    })
}

/// Scratch directory of these tests, under `target/`.
pub fn scratch() -> PathBuf {
    let dir = support::repo_root().join("target/image-test");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `podman --runtime runc …` with this machine kind's two settings.
pub fn podman() -> Command {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        let path = scratch().join(format!("containers-{}.conf", std::process::id()));
        std::fs::write(&path, "[containers]\ndefault_ulimits = []\n").unwrap();
        path
    });
    let mut command = Command::new("podman");
    command.env("CONTAINERS_CONF", conf).args(["--runtime", "runc"]);
    command
}

/// Runs `tar` on the archive through bash (for pipes); returns stdout.
fn tar(script: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new("bash")
        .args(["-c", &format!("set -euo pipefail; {script}"), "tar"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A JSON member of the OCI archive (`index.json` or a blob).
fn archive_json(archive: &Path, member: &str) -> Value {
    let bytes = tar(r#"tar -xOf "$1" "$2""#, &[archive.to_str().unwrap(), member]);
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{member} is not JSON: {e}"))
}

fn blob(digest: &Value) -> String {
    format!(
        "blobs/sha256/{}",
        digest.as_str().unwrap().strip_prefix("sha256:").unwrap()
    )
}

/// One entry of a layer, as `tar -tv --numeric-owner` shows it.
#[derive(Debug)]
struct Entry {
    mode: String,
    owner: String,
    size: u64,
    path: String,
}

/// The image config and every layer's entries, from the OCI archive.
fn image_contents(archive: &Path) -> (Value, Vec<Entry>, Vec<String>) {
    let index = archive_json(archive, "index.json");
    let manifest = archive_json(archive, &blob(&index["manifests"][0]["digest"]));
    let config = archive_json(archive, &blob(&manifest["config"]["digest"]));
    let (mut entries, mut layers) = (vec![], vec![]);
    for layer in manifest["layers"].as_array().unwrap() {
        let member = blob(&layer["digest"]);
        let list = tar(
            r#"tar -xOf "$1" "$2" | tar -tv --numeric-owner -z -f -"#,
            &[archive.to_str().unwrap(), &member],
        );
        for line in String::from_utf8(list).unwrap().lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [mode, owner, size, _date, _time, path @ ..] = &fields[..] else {
                panic!("unexpected tar line {line:?}")
            };
            entries.push(Entry {
                mode: mode.to_string(),
                owner: owner.to_string(),
                size: size.parse().unwrap(),
                path: path
                    .join(" ")
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string(),
            });
        }
        layers.push(member);
    }
    (config, entries, layers)
}

/// The shared libraries `ldd` lists for `binary`, as absolute paths.
fn linked_libraries(binary: &str) -> Vec<String> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            match fields[..] {
                [_, "=>", path, ..] if path.starts_with('/') => Some(path.to_string()),
                [path, ..] if path.starts_with('/') => Some(path.to_string()),
                _ => None,
            }
        })
        .collect()
}

/// The files the image must hold, and their parent directories: the binary, the libraries
/// `ldd` lists for it, the CA bundle and the passwd file.
fn expected_files() -> (BTreeSet<String>, BTreeSet<String>) {
    let libraries = linked_libraries(BINARY);
    // glibc (libc, libm, the loader) and libgcc_s: no OpenSSL, nothing else.
    for lib in &libraries {
        let name = lib.rsplit('/').next().unwrap();
        let known = ["libc.so", "libm.so", "libgcc_s.so", "ld-linux"]
            .iter()
            .any(|p| name.starts_with(p));
        assert!(known, "the binary links {lib}");
    }
    let mut files: BTreeSet<String> = libraries
        .iter()
        .map(|l| l.trim_start_matches('/').to_string())
        .collect();
    files.extend([IN_IMAGE, "etc/ssl/certs/ca-certificates.crt", "etc/passwd"].map(String::from));
    let parents = files
        .iter()
        .flat_map(|f| {
            let parts: Vec<&str> = f.split('/').collect();
            (1..parts.len()).map(move |n| parts[..n].join("/"))
        })
        .collect();
    (files, parents)
}

#[test]
fn the_image_holds_only_the_binary_its_libraries_ca_certificates_and_passwd() {
    let built = built();
    let (config, entries, layers) = image_contents(&built.archive);
    let (files, parents) = expected_files();
    let listing: Vec<String> = entries
        .iter()
        .map(|e| format!("{} {} {}", e.mode, e.owner, e.path))
        .collect();
    let found: BTreeSet<String> = entries
        .iter()
        .filter(|e| !e.mode.starts_with('d'))
        .map(|e| e.path.clone())
        .collect();
    assert_eq!(found, files, "files of the image:\n{}", listing.join("\n"));
    for e in &entries {
        let is_dir = e.mode.starts_with('d');
        assert!(
            e.mode.starts_with('-') || (is_dir && parents.contains(&e.path)),
            "unexpected {e:?}"
        );
        assert_eq!(e.owner, "0/0", "{} is not owned by root", e.path);
        let mode = e.mode.as_bytes();
        assert!(mode[5] != b'w' && mode[8] != b'w', "{} is writable by others", e.path);
    }
    let binary = entries.iter().find(|e| e.path == IN_IMAGE).unwrap();
    assert_eq!(
        binary.size,
        std::fs::metadata(BINARY).unwrap().len(),
        "the binary as built"
    );
    let passwd = tar(
        r#"tar -xOf "$1" "$2" | tar -xzO -f - etc/passwd"#,
        &[built.archive.to_str().unwrap(), &layers[0]],
    );
    assert_eq!(String::from_utf8(passwd).unwrap(), PASSWD);
    check_config(&config["config"]);
}

/// The runtime configuration of the image, and the Containerfile says the same.
fn check_config(c: &Value) {
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(c["Env"], json!(["PATH=/usr/local/bin"]));
    assert_eq!(c["Entrypoint"], json!([format!("/{IN_IMAGE}")]));
    assert_eq!(c["Cmd"], json!(["run"]));
    let labels = &c["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], VERSION);
    assert_eq!(labels["org.opencontainers.image.licenses"], env!("CARGO_PKG_LICENSE"));
    let containerfile = std::fs::read_to_string(support::repo_root().join("Containerfile")).unwrap();
    let ports: Vec<&str> = c["ExposedPorts"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for line in [
        "FROM scratch".to_string(),
        "COPY --from=build /rootfs/ /".to_string(),
        " && rootfs.sh target/release/centralauth-operator /rootfs".to_string(),
        format!("ENV {}", c["Env"][0].as_str().unwrap()),
        format!("USER {}", c["User"].as_str().unwrap()),
        format!("ENTRYPOINT {}", c["Entrypoint"]),
        format!("CMD {}", c["Cmd"]),
        format!("EXPOSE {}", ports.join(" ")),
    ] {
        assert!(
            containerfile.lines().any(|l| l == line),
            "the Containerfile lacks {line:?}"
        );
    }
    for key in ["title", "description", "licenses"] {
        let value = &labels[format!("org.opencontainers.image.{key}")];
        let label = format!("org.opencontainers.image.{key}={value}");
        assert!(
            containerfile.contains(&label),
            "the Containerfile lacks the label {label}"
        );
    }
}
