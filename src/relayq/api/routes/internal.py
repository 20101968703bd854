"""Internal counters for the benchmark: `GET /api/internal/stats`.

`relay bench` divides the server's database round trips by the operations it performed to
report Queries/Op. Counting them in the server (in `Database`, where every query passes) makes
the figure exact rather than estimated, and `pid` lets the benchmark sum the counters of every
process when the server runs several uvicorn workers.
"""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import Response

from relayq.api.http import endpoint, ok
from relayq.api.routes.messages import relay


@endpoint("GET", "/internal/stats", summary="Database round trips of this server process (benchmark)",
          tag="internal", responses={200: "{round_trips, db_seconds, errors, pid}"},
          description="Counters since start-up; they only grow. Used by `relay bench` for Queries/Op.")
async def stats(request: Request) -> Response:
    s = relay(request).db.stats
    return ok({"round_trips": s.round_trips, "db_seconds": s.seconds, "errors": s.errors, "pid": os.getpid()})
