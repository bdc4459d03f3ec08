"""A webhook receiver, run as its own process by the tests: `python receiver.py PORT SECRET RECORD CONTROL`.

Every POST is verified with the standardwebhooks library (`Webhook.verify`) and appended to RECORD as one JSON line:
{"id": webhook-id, "verified": bool, "status": what it answered, "event": the body}. What it answers is read from
CONTROL (JSON) at each request, so a test changes it while the receiver runs:
{"status": 200, "delay": 0.0, "fail_first": 0} (`fail_first`: answer 500 to that many requests first).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks import Webhook, WebhookVerificationError

PORT, SECRET, RECORD, CONTROL = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
webhook = Webhook(SECRET)
lock = threading.Lock()
answered = 0


def control() -> dict[str, float]:
    try:
        return dict(json.loads(CONTROL.read_text()))
    except (OSError, ValueError):
        return {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        global answered
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        wanted = control()
        time.sleep(float(wanted.get("delay", 0)))
        try:
            event = webhook.verify(body, dict(self.headers.items()))
            verified = True
        except WebhookVerificationError:
            event, verified = None, False
        with lock:
            answered += 1
            status = int(wanted.get("status", 200))
            if answered <= int(wanted.get("fail_first", 0)):
                status = 500
            if not verified:
                status = 400
            with RECORD.open("a") as record:
                record.write(json.dumps({"id": self.headers.get("webhook-id"), "verified": verified,
                                         "status": status, "event": event}) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
