//! A throw-away PKI for tests that need TLS with their own CA (association check, SMTP,
//! `rediss://`), made with the openssl CLI (Debian's `openssl`, which `.ci/run` installs).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Distinguishes the working directories of several PKIs made at once.
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A throw-away CA and one server certificate for `hosts`, made with the openssl CLI.
pub struct TestPki {
    /// The CA certificate (PEM).
    pub ca_pem: Vec<u8>,
    /// The server certificate (PEM).
    pub cert_pem: Vec<u8>,
    /// The server's private key (PEM).
    pub key_pem: Vec<u8>,
}

impl TestPki {
    /// A CA and a certificate whose SANs are `hosts` (`DNS:` names, or `IP:` entries when a
    /// host is an IP address), valid for two days.
    pub fn new(hosts: &[String]) -> TestPki {
        let dir = std::env::temp_dir().join(format!(
            "centralauth-pki-{}-{}-{}",
            std::process::id(),
            hosts[0],
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let sans: Vec<String> = hosts
            .iter()
            .map(|h| match h.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{h}"),
                Err(_) => format!("DNS:{h}"),
            })
            .collect();
        std::fs::write(
            dir.join("ext.cnf"),
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
                sans.join(",")
            ),
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &dir,
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=centralauth test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[
                &["req"][..],
                &ec,
                &["-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=app-link host"],
            ]
            .concat(),
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "srv.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "srv.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
        let pki = TestPki {
            ca_pem: read("ca.pem"),
            cert_pem: read("srv.pem"),
            key_pem: read("srv.key"),
        };
        std::fs::remove_dir_all(&dir).ok();
        pki
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
