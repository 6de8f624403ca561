"""A real SMTP server for Herald's delivery tests: Debian's aiosmtpd on loopback, with AUTH.

Every accepted message is written to OUT_DIR as <n>.json ({"mail_from", "rcpt_tos",
"auth_user", "pipelined", "data"}), so a test counts and reads exactly what arrived;
"pipelined" says whether the RCPT and DATA commands had already arrived when MAIL was read.
The server offers PIPELINING (RFC 2920) in its EHLO reply, as common MTAs do. Behaviour knobs:
  --no-pipelining    do not offer PIPELINING
  --fail-first N     answer the first N DATA commands with 451 (then recover)
  --reject           answer every DATA command with 550
  --reject-rcpt      answer every RCPT command with 550
  --delay-ms D       wait D ms before answering DATA (to kill a worker mid-batch)
  --oauth-introspect URL
                     also take AUTH XOAUTH2, asking the identity provider at URL (RFC 7662)
                     whether the bearer token is active and whose it is
Prints "READY <port>" once listening. Run with /usr/bin/python3 (Debian's, which has aiosmtpd).
"""

import argparse
import logging
import warnings
import asyncio
import base64
import collections
import itertools
import json
import os
import urllib.parse
import urllib.request

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword


class LongLines(SMTP):
    """An XOAUTH2 line carries a whole access token: longer than SMTP's 512-byte default."""

    command_size_limit = 16384
    command_size_limits = collections.defaultdict(lambda: 16384)
    line_length_limit = 16384


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--user", default="herald")
    parser.add_argument("--password", default="s3cret")
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--reject", action="store_true")
    parser.add_argument("--reject-rcpt", action="store_true")
    parser.add_argument("--no-pipelining", action="store_true")
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--oauth-introspect")
    args = parser.parse_args()
    # Plain AUTH on loopback is the point here; keep the test output quiet about it.
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    os.makedirs(args.out, exist_ok=True)
    counter = itertools.count(1)
    data_commands = itertools.count(1)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == args.user and auth_data.password.decode() == args.password
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def token_owner(token):
        data = urllib.parse.urlencode({"token": token}).encode()
        with urllib.request.urlopen(args.oauth_introspect, data=data, timeout=5) as answer:
            info = json.load(answer)
        return info.get("username") if info.get("active") else None

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            if not args.no_pipelining:
                responses.insert(len(responses) - 1, "250-PIPELINING")
            return responses

        if args.oauth_introspect:

            async def auth_XOAUTH2(self, server, args_):
                # lettre sends the initial response on the AUTH line; others wait for "334".
                if len(args_) == 2:
                    try:
                        raw = base64.b64decode(args_[1], validate=True)
                    except Exception:
                        await server.push("501 5.5.2 Cannot decode the response")
                        return AuthResult(success=False, handled=True)
                else:
                    raw = await server.challenge_auth("")
                    if raw is MISSING:
                        return AuthResult(success=False, handled=True)
                fields = dict(p.split("=", 1) for p in raw.decode(errors="replace").split("\x01") if "=" in p)
                user, auth = fields.get("user", ""), fields.get("auth", "")
                token = auth[7:] if auth[:7].lower() == "bearer " else None
                owner = await asyncio.get_running_loop().run_in_executor(None, token_owner, token) if token else None
                if owner is not None and owner == user:
                    return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
                # Answered at once, without Gmail's JSON challenge, which lettre cannot answer.
                return AuthResult(success=False, handled=False, message="535 5.7.8 Authentication credentials invalid")

        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            # What the client sent after MAIL and the server has not read yet.
            envelope.pipelined = len(server._reader._buffer) > 0
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
            return "250 OK"

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if args.reject_rcpt:
                return "550 5.1.1 No such user here"
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            n = next(data_commands)
            if args.delay_ms:
                await asyncio.sleep(args.delay_ms / 1000)
            if args.reject:
                return "550 5.7.1 Recipient refused by policy"
            if n <= args.fail_first:
                return "451 4.3.0 Temporary local problem, try again"
            seq = next(counter)
            record = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "auth_user": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
                "pipelined": getattr(envelope, "pipelined", False),
                "data": envelope.content.decode("utf-8", "replace") if isinstance(envelope.content, bytes) else envelope.content,
            }
            tmp = os.path.join(args.out, f".{seq}.tmp")
            with open(tmp, "w") as f:
                json.dump(record, f)
            os.rename(tmp, os.path.join(args.out, f"{seq}.json"))
            return "250 2.0.0 OK queued"

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: LongLines(Handler(), hostname="herald-test-smtp", authenticator=authenticator, auth_required=True, auth_require_tls=False),
            "127.0.0.1",
            0,
        )
        port = server.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
