//! The checks of code and refresh-token exchanges, without a server.

use super::*;
use crate::oauth::error::OAuthError;
use crate::oauth::grant::AuthRequest;
use crate::tenant::tests::{created, org};

const VERIFIER: &str = "oauth2-test-verifier-0123456789-abcdefghijklmnop";
const CB: &str = "https://app.example.com/cb";

fn named(name: &str) -> Organization {
    created(org(None, None), name, 100, Some("cid"))
}

fn code(org: &Organization) -> CodeGrant {
    CodeGrant::for_tests(AuthRequest {
        org: org_key(org),
        client_id: "cid".into(),
        protocol: Protocol::OAuth,
        redirect_uri: CB.into(),
        code_challenge: Some(pkce::s256(VERIFIER)),
        app_id: None,
        scope: Some("openid".into()),
        nonce: None,
    })
}

fn web() -> Caller {
    Caller {
        client_id: "cid".into(),
        confidential: true,
    }
}

#[test]
fn only_the_client_a_refresh_token_was_issued_to_may_revoke_it() {
    let org = named("acme");
    let rg = |app_id: Option<&str>| RefreshGrant {
        org: org_key(&org),
        client_id: "cid".into(),
        family_id: "f".into(),
        session_id: "s".into(),
        email: "ada@example.com".into(),
        scope: None,
        auth_time: 0,
        app_id: app_id.map(Into::into),
    };
    let public = Caller {
        confidential: false,
        ..web()
    };
    assert!(issued_to(&rg(None), &org, &web()));
    assert!(
        issued_to(&rg(Some("app")), &org, &web()),
        "the confidential client owns the ID"
    );
    assert!(
        issued_to(&rg(Some("app")), &org, &public),
        "a native app revokes its own"
    );
    assert!(!issued_to(&rg(None), &org, &public), "but not the web app's");
    assert!(!issued_to(&rg(None), &named("other"), &web()), "another organization's");
    let other_client = Caller {
        client_id: "other-cid".into(),
        confidential: true,
    };
    assert!(!issued_to(&rg(None), &org, &other_client));
}

#[test]
fn the_exact_exchange_passes_and_each_mismatch_is_refused() {
    let org = named("acme");
    let g = code(&org);
    assert!(check_code(&g, &org, &web(), CB, Some(VERIFIER)).is_ok());
    let public = Caller {
        confidential: false,
        ..web()
    };
    assert!(matches!(
        check_code(&g, &org, &public, CB, Some(VERIFIER)).map_err(OAuthError::from),
        Err(OAuthError::InvalidClient)
    ));
    let other_org = named("other");
    let uuid = "0d5c2f7e-6d1b-4c1a-9b1e-2f7d8e9a0b1c";
    let mut centralauth = code(&org);
    centralauth.request.protocol = Protocol::CentralAuth;
    for (g, org, redirect, verifier) in [
        (&g, &other_org, CB, Some(VERIFIER)),
        (&centralauth, &org, CB, Some(VERIFIER)),
        (&g, &org, "https://app.example.com/cb/", Some(VERIFIER)),
        (&g, &org, CB, Some("oauth2-test-verifier-0123456789-abcdefghijklmnoq")),
        (&g, &org, CB, None),
    ] {
        let refused = check_code(g, org, &web(), redirect, verifier).map_err(OAuthError::from);
        assert!(
            matches!(refused, Err(OAuthError::InvalidGrant(_))),
            "{redirect} {verifier:?}"
        );
    }
    // The CentralAuth endpoint's UUID verifier is too short for the standard one.
    let mut uuid_code = code(&org);
    uuid_code.request.code_challenge = Some(pkce::s256(uuid));
    assert!(check_code(&uuid_code, &org, &web(), CB, Some(uuid)).is_err());
}
