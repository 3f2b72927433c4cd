#!/usr/bin/env python3
"""An SMTP server that keeps every message it receives as a file in a Maildir.

Used by scripts/stack.sh and the tests: a real SMTP conversation, and the delivered messages can be
read back from <maildir>/new. Accepts any sender and recipient; AUTH is not offered.
"""
import argparse
import asyncio
import logging
import mailbox
import os
import signal

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s smtp-sink %(message)s")
    # Maildir(create=True) makes tmp/new/cur only when the folder itself is new: make them always.
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(args.maildir, sub), exist_ok=True)
    controller = Controller(Mailbox(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    logging.info("listening on %s:%d, keeping messages in %s", args.host, args.port, args.maildir)

    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
