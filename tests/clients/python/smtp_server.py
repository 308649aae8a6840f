"""A real SMTP server for the e-mail login tests (aiosmtpd), on a free loopback port.

Input: JSON in argv[1]:
  maildir   directory where each received message is written as <n>.json
            ({"from", "to", "auth", "tls", "data"}), atomically (written, then renamed)
  tls       "none" | "starttls" (STARTTLS required before MAIL) | "tls" (TLS from the first byte)
  cert, key server certificate and key (PEM files) for "starttls" and "tls"
  username, password
            when given, AUTH (PLAIN or LOGIN) is required and must match
Prints {"port": N} on one line once it listens, then serves until killed.
"""

import asyncio
import itertools
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

config = json.loads(sys.argv[1])
counter = itertools.count(1)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "auth": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
            "tls": session.ssl is not None or config.get("tls") == "tls",
            "data": envelope.content.decode("utf-8", "replace"),
        }
        tmp = os.path.join(config["maildir"], f".{n}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(config["maildir"], f"{n}.json"))
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == config["username"].encode()
        and auth_data.password == config["password"].encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


async def main():
    mode = config.get("tls", "none")
    context = None
    if mode != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config["cert"], config["key"])
    auth = "username" in config
    options = dict(
        hostname="smtp.test",
        auth_required=auth,
        # aiosmtpd only knows STARTTLS: with TLS from the first byte the connection is already
        # encrypted, so AUTH need not wait for it.
        auth_require_tls=mode == "starttls",
        authenticator=authenticator if auth else None,
    )
    if mode == "starttls":
        options.update(tls_context=context, require_starttls=True)
    factory = lambda: SMTP(Handler(), **options)
    server = await asyncio.get_running_loop().create_server(
        factory, "127.0.0.1", 0, ssl=context if mode == "tls" else None
    )
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await server.serve_forever()


asyncio.run(main())
