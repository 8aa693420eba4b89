"""X's batch compliance contract: ``ComplianceClient`` runs a job, ``parse_results`` reads its result lines
(``tickets.compliance`` applies them to the store through the one removal path).

X's contract (docs.x.com → X API v2 → Compliance → Batch compliance; ``POST /2/compliance/jobs``,
``GET /2/compliance/jobs/:id``): create a job of type ``tweets`` or ``users`` (app bearer token) → ``upload_url``
(PUT the IDs, one per line, ``Content-Type: text/plain``, within 15 minutes) → poll the job until its ``status``
is ``complete`` (or ``failed`` / ``expired``) → GET ``download_url`` (valid one week): one JSON object per line
for each ID that needs action, ``{"id", "action", "reason", "created_at", "redacted_at"?,
"withheld_in_countries"?}``. X allows one concurrent job per type. A malformed line is reported with the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import requests

from tweetdesk.errors import TweetdeskError

TWEET_ACTIONS = {"delete", "withheld", "scrub_geo"}
USER_ACTIONS = {"delete", "protect", "suspend", "deactivate", "withheld", "scrub_geo"}


class ComplianceError(TweetdeskError):
    pass


class ComplianceClient:
    """X's batch compliance endpoints over ``requests`` (tweepy has no client for them)."""

    def __init__(self, api_base: str, bearer_token: str, *, poll_seconds: float = 10.0, timeout: float = 30.0,
                 max_wait: float = 3600.0, sleep: Callable[[float], None] = time.sleep):
        self.base = api_base.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {bearer_token}"
        self.poll_seconds, self.timeout, self.max_wait, self.sleep = poll_seconds, timeout, max_wait, sleep

    def _json(self, r: requests.Response, what: str) -> dict:
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code >= 400:
            detail = body.get("detail") or (body.get("errors") or [{}])[0].get("message") or r.reason
            raise ComplianceError(f"X refused {what} ({r.status_code}): {detail}")
        return body.get("data") or {}

    def run_job(self, kind: str, ids: list[str]) -> bytes:
        """Create a job, upload the IDs, wait for it, download the result file."""
        try:
            return self._run_job(kind, ids)
        except requests.RequestException as e:
            raise ComplianceError(f"cannot reach X at {self.base} for the {kind} compliance job "
                                  f"({type(e).__name__})") from None

    def _run_job(self, kind: str, ids: list[str]) -> bytes:
        job = self._json(self.session.post(f"{self.base}/2/compliance/jobs", json={"type": kind, "name":
                         f"tweetdesk-{kind}"}, timeout=self.timeout), f"a {kind} compliance job")
        up = requests.put(job["upload_url"], data="\n".join(ids).encode(), headers={"Content-Type": "text/plain"},
                          timeout=self.timeout)
        if up.status_code >= 300:
            raise ComplianceError(f"upload of job {job['id']} refused ({up.status_code})")
        waited = 0.0
        while True:
            status = self._json(self.session.get(f"{self.base}/2/compliance/jobs/{job['id']}", timeout=self.timeout),
                                f"the status of job {job['id']}")
            if status.get("status") == "complete":
                break
            if status.get("status") in ("failed", "expired"):
                raise ComplianceError(f"compliance job {job['id']} {status['status']}")
            if waited >= self.max_wait:
                raise ComplianceError(f"compliance job {job['id']} not complete after {waited:.0f} s")
            self.sleep(self.poll_seconds)
            waited += self.poll_seconds
        down = requests.get(status.get("download_url") or job["download_url"], timeout=self.timeout)
        if down.status_code >= 300:
            raise ComplianceError(f"download of job {job['id']} refused ({down.status_code})")
        return down.content


def parse_results(kind: str, data: bytes) -> tuple[list[dict], list[str]]:
    """Result lines → (valid lines, reasons for the malformed ones)."""
    ok, bad = [], []
    allowed = TWEET_ACTIONS if kind == "tweets" else USER_ACTIONS
    for n, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as e:
            bad.append(f"{kind} line {n}: not JSON ({e.msg})")
            continue
        if not isinstance(line, dict):
            bad.append(f"{kind} line {n}: not a JSON object")
        elif not isinstance(line.get("id"), str) or not line["id"].isdigit():
            bad.append(f"{kind} line {n}: no valid id")
        elif line.get("action") not in allowed:
            bad.append(f"{kind} line {n}: unknown action {str(line.get('action'))[:40]!r}")
        else:
            ok.append(line)
    return ok, bad
