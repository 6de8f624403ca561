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
Prints "READY <port>" once listening. Run with /usr/bin/python3 (Debian's, which has aiosmtpd).
"""

import argparse
import logging
import warnings
import asyncio
import itertools
import json
import os

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


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

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            if not args.no_pipelining:
                responses.insert(len(responses) - 1, "250-PIPELINING")
            return responses

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
            lambda: SMTP(Handler(), hostname="herald-test-smtp", authenticator=authenticator, auth_required=True, auth_require_tls=False),
            "127.0.0.1",
            0,
        )
        port = server.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
