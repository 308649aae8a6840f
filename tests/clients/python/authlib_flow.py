"""authlib against the server: authorization code + PKCE (S256) with the ID token verified
against the JWKS, then client credentials. Input: JSON in argv[1]; output: JSON on stdout."""

import json
import os
import sys

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # the test server speaks http on loopback

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt


def scripted_login(url, email, password):
    """GET the form, POST it with the CSRF cookie, return the redirect Location."""
    browser = requests.Session()
    page = browser.get(url, allow_redirects=False)
    page.raise_for_status()
    html = page.text

    def field(name):
        marker = f'name="{name}" value="'
        start = html.index(marker) + len(marker)
        return html[start:html.index('"', start)]

    base = url.split("/", 3)
    post = browser.post(
        f"{base[0]}//{base[2]}/login",
        data={"login": field("login"), "csrf": field("csrf"), "email": email, "password": password},
        allow_redirects=False,
    )
    assert post.status_code == 303, post.status_code
    return post.headers["location"]


def main():
    cfg = json.loads(sys.argv[1])
    meta = requests.get(cfg["issuer"] + "/.well-known/openid-configuration").json()
    assert meta["issuer"] == cfg["issuer"], meta["issuer"]
    session = OAuth2Session(
        cfg["clientId"],
        cfg["clientSecret"],
        scope="openid email",
        redirect_uri=cfg["redirectUri"],
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    location = scripted_login(url, cfg["email"], cfg["password"])
    token = session.fetch_token(meta["token_endpoint"], authorization_response=location, code_verifier=verifier)
    jwks = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"]).json())
    claims = jwt.decode(
        token["id_token"],
        jwks,
        claims_options={"iss": {"essential": True, "value": cfg["issuer"]}, "aud": {"essential": True, "value": cfg["clientId"]}},
    )
    claims.validate()
    assert claims["nonce"] == nonce
    userinfo = session.get(meta["userinfo_endpoint"]).json()
    cc = OAuth2Session(cfg["clientId"], cfg["clientSecret"]).fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    print(json.dumps({
        "state": state,
        "email": claims["email"],
        "sub": claims["sub"],
        "userinfo": userinfo,
        "idTokenAlg": jwt_header_alg(token["id_token"]),
        "clientCredentials": bool(cc.get("access_token")),
        "ccTokenType": cc.get("token_type"),
    }))


def jwt_header_alg(token):
    import base64

    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"]


if __name__ == "__main__":
    main()
