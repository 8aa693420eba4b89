"""X: its rules (``rules``: handles, mentions, who summoned us, opt-outs, prices), acting as our account (``auth``),
its tweet payloads (``payload``), its two sources (``mentions`` timeline, filtered ``stream``), and batch
compliance (``compliance``, with the ``cli`` commands compliance, erase and x-records)."""
