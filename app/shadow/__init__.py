"""Shadow traffic: mirror a sampled share of one player geography's reads to a candidate region and
diff the answers three ways, without adding latency to the live request.

Where the mirror lives. In the source region's app, as the outermost ASGI middleware. The source app
is the one place that sees every real player request together with the answer the player got, so
the live answer is the first primary sample for free, and no new hop sits in front of the players
(a mirroring proxy process would be one more thing on the live path that can fail or queue). The
middleware only copies the answer while it streams out; all mirror work happens after the live
response has been sent, in background workers fed by a bounded queue that drops (and counts) rather
than waits. On AWS the same code runs in the source region's ECS tasks.

Switching it on. The migration tool writes a JSON file (SHADOW_FILE; by default `shadow.json`
beside READERS_FILE) that the app re-reads when it changes, like READERS_FILE: no restart of the
live game. On AWS, where many tasks must read one switch, the same document lives in an SSM
parameter (SHADOW_PARAMETER) that every task polls every few seconds. Only the app of the switch's
`source` region mirrors (the lab's apps share one file). A new `mirror_id` starts a fresh report;
`"enabled": false` stops mirroring and keeps the last report readable. `api_host`, when set, is sent
as Host and TLS SNI to primary_url and candidate_url (load balancers whose certificate is for the
API's public name).

Which requests. Those with a mirrored method (GET/HEAD: writes would be applied twice) whose
geography header (`X-Player-Geo` by default: in the lab the load generator sets it as the
stand-in for the edge's viewer-geography header, e.g. CloudFront-Viewer-Country) names the
geography being moved; of those, the players whose id hashes below `sample_rate` (sha256 of the id,
so a player is all in or all out, and the same players in every process). The id is the bearer
token's `sub`, else the path's `{player_id}`; a request with neither (the leaderboards) is
sampled per request at the same rate.

The three-way diff. For a sampled request the mirror sends the same request (same headers,
including X-Min-LSN, plus `X-Shadow`) to the candidate through the source → target link, and once
that answer is in, again to the primary: the two primary samples bracket the candidate's view in
time. Each answer is flattened to field paths (`$status`, `entries.3.score`, …). A field whose two
primary samples differ is noise (a timestamp, an order, a moving value) and is cancelled; a field
where the primaries agree and the candidate does not is a suspect. A suspect is settled by time,
because replicas and caches converge and bugs do not: it is explained if the candidate's value is
what the primary answered to the same request within the endpoint's `staleness_seconds` (its data
type's documented bound, e.g. the peer leaderboard cache), else the request is compared once more
after `recheck_seconds`; only a field that differs again is a real mismatch. Field ignore rules
(global and per route template) drop fields from the diff; an endpoint with `diff: false` (an
answer that differs between regions by design) is still mirrored for latency and errors.

The report, per route template (GET /internal/shadow/report): requests eligible and sampled,
comparisons and their outcome (matched, within staleness, converged on recheck, mismatched), the
mismatched and the noisy fields, a few sample diffs, the candidate's errors (5xx, timeouts,
connection failures), latency p50/p95 of the live answer and of the candidate (its own server
time from `Server-Timing`, and the round trip from the source), and the mirror's own loss (queue
full, answers too large, the primary failing its second sample, mirroring stopped while queued).
Requests carrying `X-Shadow` are never mirrored again; every app answers them with
`Server-Timing: app;dur=<ms>`.

The figures of a fleet (SHADOW_METRICS=emf). Each task's report is its own; on ECS the operator reads
the fleet's from CloudWatch. Every SHADOW_METRICS_SECONDS the task prints, per route, its counters
since the last print and its latency values as CloudWatch Embedded Metric Format lines on stdout
(namespace Game/Shadow, dimensions Region, MirrorId, Route), and a Heartbeat (Region, MirrorId) while it
mirrors; the awslogs driver ships them and CloudWatch extracts the metrics, so the app makes no
CloudWatch calls. Sample diffs are not metrics: each is printed once as a JSON line
(`shadow_sample_diff`) for CloudWatch Logs Insights.

The package, one job per module: config (the switch document, sampling), diff (the three-way diff,
pure), lists (keyed lists judged by their bound), report (what a mirror measured), mirror (queue,
workers, the comparison), emf (the fleet's figures), middleware (the ASGI middleware and the report
endpoint)."""

from app.shadow.config import (DEFAULT_GEO_HEADER, SHADOW_HEADER, EndpointRule, ShadowConfig, player_sampled,
                               token_subject)
from app.shadow.diff import ABSENT, Diff, answer_fields, flatten, ignored, path_shape, path_text, same, three_way
from app.shadow.emf import EmfEmitter
from app.shadow.lists import KeyedList, compare_keyed
from app.shadow.middleware import ShadowMiddleware, router
from app.shadow.mirror import Mirror
from app.shadow.report import EndpointStats, ShadowReport

__all__ = ["ABSENT", "DEFAULT_GEO_HEADER", "SHADOW_HEADER", "Diff", "EmfEmitter", "EndpointRule", "EndpointStats",
           "KeyedList", "Mirror", "ShadowConfig", "ShadowMiddleware", "ShadowReport", "answer_fields",
           "compare_keyed", "flatten", "ignored", "path_shape", "path_text", "player_sampled", "router", "same",
           "three_way", "token_subject"]
