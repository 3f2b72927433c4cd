#!/usr/bin/env python3
"""An SMTP server that keeps every message it receives as a file in a Maildir.

Used by scripts/stack.sh and the tests: a real SMTP conversation, and the delivered messages can be
read back from <maildir>/new. Accepts any sender and recipient.

By default it speaks plain SMTP and offers no AUTH. With --tls-cert/--tls-key it speaks TLS:
STARTTLS, required before anything else, or with --implicit-tls TLS from the first byte (smtps).
With --auth-user/--auth-password-file (TLS only) it accepts mail only after AUTH PLAIN or LOGIN as
that one user; a wrong password is answered 535.
"""
import argparse
import asyncio
import hmac
import logging
import mailbox
import os
import signal
import ssl
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


def authenticator(user: str, password: str):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and hmac.compare_digest(auth_data.login, user.encode())
            and hmac.compare_digest(auth_data.password, password.encode())
        )
        logging.info("AUTH %s as %r: %s", mechanism,
                     getattr(auth_data, "login", b"?").decode(errors="replace"),
                     "accepted" if ok else "refused")
        return AuthResult(success=ok, handled=False)
    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--tls-cert", help="server certificate (PEM); turns TLS on")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--implicit-tls", action="store_true",
                        help="TLS from the first byte (smtps) instead of STARTTLS")
    parser.add_argument("--auth-user", help="require AUTH as this user (needs TLS)")
    parser.add_argument("--auth-password-file", help="file holding the user's password")
    args = parser.parse_args()

    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.implicit_tls and not args.tls_cert:
        parser.error("--implicit-tls needs --tls-cert and --tls-key")
    if bool(args.auth_user) != bool(args.auth_password_file):
        parser.error("--auth-user and --auth-password-file go together")
    if args.auth_user and not args.tls_cert:
        parser.error("--auth-user needs TLS: a password must not cross the wire in clear text")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s smtp-sink %(message)s")
    # Maildir(create=True) makes tmp/new/cur only when the folder itself is new: make them always.
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(args.maildir, sub), exist_ok=True)

    options = {}
    mode = "plain SMTP"
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        if args.implicit_tls:
            options["ssl_context"] = context
            # The whole session is encrypted; aiosmtpd's own check only knows STARTTLS.
            options["auth_require_tls"] = False
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            mode = "implicit TLS"
        else:
            options["tls_context"] = context
            options["require_starttls"] = True
            mode = "STARTTLS required"
    if args.auth_user:
        with open(args.auth_password_file, encoding="utf-8") as f:
            password = f.read().strip()
        options["authenticator"] = authenticator(args.auth_user, password)
        options["auth_required"] = True
        mode += f", AUTH required as {args.auth_user}"

    controller = Controller(Mailbox(args.maildir), hostname=args.host, port=args.port,
                            **options)
    controller.start()
    logging.info("listening on %s:%d (%s), keeping messages in %s",
                 args.host, args.port, mode, args.maildir)

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
