//! Checking association files fetched from an app-link host: does a body let the app open the
//! redirect URI?

use std::collections::BTreeSet;

use serde_json::Value;

use super::files::HANDLE_ALL_URLS;

/// What an association file lacks for one app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    /// The body is not JSON of the documented shape.
    #[error("{file} is not valid JSON: {detail}")]
    NotJson {
        /// File name.
        file: &'static str,
        /// Parser message.
        detail: String,
    },
    /// No entry names the app.
    #[error("{file} does not list {app}")]
    NotListed {
        /// File name.
        file: &'static str,
        /// `TEAMID.bundleId` or the package name.
        app: String,
    },
    /// The app is listed but its components do not cover the redirect path.
    #[error("apple-app-site-association lists {app} but none of its components matches the redirect path {path}")]
    PathNotCovered {
        /// `TEAMID.bundleId`.
        app: String,
        /// Path of the redirect URI.
        path: String,
    },
    /// The package is listed without some of the app's certificate fingerprints.
    #[error("assetlinks.json lists {package} without the certificate fingerprints {missing}")]
    FingerprintsMissing {
        /// Package name.
        package: String,
        /// Comma-separated missing fingerprints.
        missing: String,
    },
}

const AASA_FILE: &str = "apple-app-site-association";
const ASSETLINKS_FILE: &str = "assetlinks.json";

/// Checks that an `apple-app-site-association` body lets `apple_app_id` open `path`.
/// Understands the current `components` format and the legacy `appID`/`paths` one.
pub fn verify_aasa(body: &[u8], apple_app_id: &str, path: &str) -> Result<(), Missing> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| Missing::NotJson {
        file: AASA_FILE,
        detail: e.to_string(),
    })?;
    let details = doc
        .pointer("/applinks/details")
        .and_then(Value::as_array)
        .ok_or_else(|| Missing::NotJson {
            file: AASA_FILE,
            detail: "no applinks.details array".into(),
        })?;
    let names_app = |d: &&Value| {
        let in_list = d
            .get("appIDs")
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|i| i.as_str() == Some(apple_app_id)));
        in_list || d.get("appID").and_then(Value::as_str) == Some(apple_app_id)
    };
    let entries: Vec<&Value> = details.iter().filter(names_app).collect();
    if entries.is_empty() {
        return Err(Missing::NotListed {
            file: AASA_FILE,
            app: apple_app_id.to_string(),
        });
    }
    if entries.iter().any(|d| detail_covers(d, path)) {
        Ok(())
    } else {
        Err(Missing::PathNotCovered {
            app: apple_app_id.to_string(),
            path: path.to_string(),
        })
    }
}

/// Apple's rule: the first component (or legacy path) that matches decides; `exclude` (or a
/// `NOT ` prefix) means the URL does not open the app.
fn detail_covers(detail: &Value, path: &str) -> bool {
    if let Some(components) = detail.get("components").and_then(Value::as_array) {
        for c in components {
            let pattern = c.get("/").and_then(Value::as_str).unwrap_or("*");
            let case_sensitive = c.get("caseSensitive").and_then(Value::as_bool).unwrap_or(true);
            if glob(pattern, path, case_sensitive) {
                return !c.get("exclude").and_then(Value::as_bool).unwrap_or(false);
            }
        }
        return false;
    }
    for p in detail.get("paths").and_then(Value::as_array).into_iter().flatten() {
        let Some(p) = p.as_str() else { continue };
        let (exclude, pattern) = p.strip_prefix("NOT ").map_or((false, p), |rest| (true, rest));
        if glob(pattern, path, true) {
            return !exclude;
        }
    }
    false
}

/// Apple's pattern syntax: `*` matches any run of characters, `?` exactly one.
pub(super) fn glob(pattern: &str, text: &str, case_sensitive: bool) -> bool {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let (p, t): (Vec<char>, Vec<char>) = (fold(pattern).chars().collect(), fold(text).chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Checks that an `assetlinks.json` body grants `handle_all_urls` to `package` with every one
/// of `fingerprints` (compared case-insensitively).
pub fn verify_assetlinks(body: &[u8], package: &str, fingerprints: &[String]) -> Result<(), Missing> {
    let doc: Value = serde_json::from_slice(body).map_err(|e| Missing::NotJson {
        file: ASSETLINKS_FILE,
        detail: e.to_string(),
    })?;
    let statements = doc.as_array().ok_or_else(|| Missing::NotJson {
        file: ASSETLINKS_FILE,
        detail: "the top level is not an array of statements".into(),
    })?;
    let grants = |s: &&Value| {
        s.get("relation")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|r| r.as_str() == Some(HANDLE_ALL_URLS)))
            && s.pointer("/target/namespace").and_then(Value::as_str) == Some("android_app")
            && s.pointer("/target/package_name").and_then(Value::as_str) == Some(package)
    };
    let listed: BTreeSet<String> = statements
        .iter()
        .filter(grants)
        .filter_map(|s| s.pointer("/target/sha256_cert_fingerprints").and_then(Value::as_array))
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_ascii_uppercase))
        .collect();
    if !statements.iter().any(|s| grants(&s)) {
        return Err(Missing::NotListed {
            file: ASSETLINKS_FILE,
            app: package.to_string(),
        });
    }
    let missing: Vec<&str> = fingerprints
        .iter()
        .filter(|f| !listed.contains(&f.to_ascii_uppercase()))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Missing::FingerprintsMissing {
            package: package.to_string(),
            missing: missing.join(", "),
        })
    }
}
