//! The checks of a CentralAuth code exchange, without a server.

use super::*;
use crate::oauth::error::{CaCode, CaError};
use crate::oauth::grant::AuthRequest;

const UUID: &str = "0d5c2f7e-6d1b-4c1a-9b1e-2f7d8e9a0b1c";

fn org(name: &str) -> OrgKey {
    OrgKey {
        namespace: "ns".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
    }
}

fn code(app_id: Option<&str>) -> CodeGrant {
    CodeGrant::for_tests(AuthRequest {
        org: org("acme"),
        client_id: "cid".into(),
        protocol: Protocol::CentralAuth,
        redirect_uri: "https://app.example.com/cb?return_to=%2Fdash".into(),
        code_challenge: Some(pkce::s256(UUID)),
        app_id: app_id.map(Into::into),
        scope: None,
        nonce: None,
    })
}

fn web() -> Exchange<'static> {
    Exchange {
        site_org: Some(org("acme")),
        authenticated: true,
        redirect_uri: "https://app.example.com/cb",
        verifier: Some(UUID),
    }
}

fn refused(e: &Exchange, g: &CodeGrant) -> Option<CaCode> {
    e.check(g).err().map(|err| CaError::from(err).code)
}

#[test]
fn the_official_web_client_exchange_passes() {
    assert_eq!(refused(&web(), &code(None)), None);
    let native = Exchange {
        authenticated: false,
        ..web()
    };
    assert_eq!(refused(&native, &code(Some("app"))), None);
}

#[test]
fn each_mismatch_is_refused_with_its_code() {
    let g = code(None);
    let anonymous = Exchange {
        authenticated: false,
        ..web()
    };
    assert_eq!(refused(&anonymous, &g), Some(CaCode::NoPermission));
    let other_org = Exchange {
        site_org: Some(org("other")),
        ..web()
    };
    assert_eq!(refused(&other_org, &g), Some(CaCode::SessionInvalid));
    let mut oauth = code(None);
    oauth.request.protocol = Protocol::OAuth;
    assert_eq!(refused(&web(), &oauth), Some(CaCode::SessionInvalid));
    let other_path = Exchange {
        redirect_uri: "https://app.example.com/other",
        ..web()
    };
    assert_eq!(refused(&other_path, &g), Some(CaCode::CallbackUrlInvalid));
    let wrong_verifier = Exchange {
        verifier: Some("1d5c2f7e-6d1b-4c1a-9b1e-2f7d8e9a0b1c"),
        ..web()
    };
    assert_eq!(refused(&wrong_verifier, &g), Some(CaCode::CodeChallengeInvalid));
}
