"""A desktop app as docs/desktop-apps.md describes it, for tests/integration/desktop_app.rs.

  desktop_client.py [keygen] '{"dir": ..., "alg": "ES256" | "RS256" | "PS256", "name": ...}'
      makes a key and a self-signed certificate with `cryptography`; prints
      {"thumbprint", "key", "cert"} (thumbprint: SHA-256 of the DER certificate, lowercase hex).

  desktop_client.py login '{"issuer", "client_id", "app_id", "path", "key", "cert", "alg", ...}'
      reads the issuer's discovery, listens on 127.0.0.1 on a random free port, prints
      {"authorize_url"} (the test plays the browser and follows the redirect to the listener),
      receives the code and the desktop_challenge, signs the client assertion and exchanges the
      code at the token endpoint with PKCE; prints {"status", "body", "challenge", "assertion",
      "redirect_uri"}. Test knobs: "challenge" (sign this one instead of the one received),
      "exp_offset" (seconds, default 60), "omit_assertion", "assertion" (send this one as is),
      "host" (listen on "::1" instead).
"""

import base64
import datetime
import hashlib
import http.server
import json
import os
import secrets
import socket
import sys
import threading
import time
import urllib.parse

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def keygen(args):
    alg = args["alg"]
    key = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, args.get("name", "desktop test app"))])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(args["dir"], exist_ok=True)
    stem = os.path.join(args["dir"], args.get("name", "app").replace(" ", "-"))
    with open(stem + ".key.pem", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(stem + ".cert.pem", "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    der = cert.public_bytes(serialization.Encoding.DER)
    return {"thumbprint": hashlib.sha256(der).hexdigest(), "key": stem + ".key.pem", "cert": stem + ".cert.pem"}


def sign(alg, key, data: bytes) -> bytes:
    if alg == "ES256":
        r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "RS256":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), hashes.SHA256().digest_size), hashes.SHA256())


def client_assertion(args, token_endpoint, challenge) -> str:
    with open(args["key"], "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    with open(args["cert"], "rb") as f:
        der = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
    header = {"alg": args["alg"], "typ": "JWT", "x5c": [base64.b64encode(der).decode()]}
    now = int(time.time())
    claims = {"iss": args["app_id"], "sub": args["app_id"], "aud": token_endpoint, "jti": secrets.token_urlsafe(16),
              "iat": now, "exp": now + args.get("exp_offset", 60), "challenge": challenge}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    return signing_input + "." + b64url(sign(args["alg"], key, signing_input.encode()))


class Callback(http.server.BaseHTTPRequestHandler):
    """Receives the one redirect and answers the browser with a plain page."""

    received = None

    def do_GET(self):
        Callback.received = self.path
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"You are logged in; return to the app.")

    def log_message(self, *a):
        pass


class V6Server(http.server.HTTPServer):
    address_family = socket.AF_INET6


def login(args):
    meta = requests.get(args["issuer"] + "/.well-known/openid-configuration", timeout=10).json()
    host = args.get("host", "127.0.0.1")
    server = (V6Server if host == "::1" else http.server.HTTPServer)((host, 0), Callback)
    port = server.server_address[1]
    literal = "[::1]" if host == "::1" else host
    redirect_uri = f"http://{literal}:{port}{args['path']}"
    verifier = secrets.token_urlsafe(48)
    challenge = b64url(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(12)
    query = urllib.parse.urlencode({
        "client_id": args["client_id"], "response_type": "code", "redirect_uri": redirect_uri, "scope": "openid",
        "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
    })
    thread = threading.Thread(target=server.handle_request, daemon=True)
    server.timeout = 60
    thread.start()
    print(json.dumps({"authorize_url": meta["authorization_endpoint"] + "?" + query}), flush=True)
    thread.join(65)
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(Callback.received or "").query))
    if params.get("state") != state or "code" not in params:
        return {"status": 0, "body": {"error": "no code on the loopback redirect", "params": params}}
    received = params.get("desktop_challenge")
    form = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": redirect_uri,
            "code_verifier": verifier, "client_id": args["client_id"]}
    assertion = args.get("assertion") or client_assertion(args, meta["token_endpoint"], args.get("challenge", received))
    if not args.get("omit_assertion"):
        form.update({"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
    resp = requests.post(meta["token_endpoint"], data=form, timeout=10)
    return {"status": resp.status_code, "body": resp.json(), "challenge": received, "assertion": assertion,
            "redirect_uri": redirect_uri}


if __name__ == "__main__":
    command, payload = (sys.argv[1], sys.argv[2]) if len(sys.argv) == 3 else ("keygen", sys.argv[1])
    payload = json.loads(payload)
    print(json.dumps({"keygen": keygen, "login": login}[command](payload)), flush=True)
