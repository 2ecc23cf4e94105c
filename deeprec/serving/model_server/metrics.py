"""Server metrics in Prometheus' text exposition format (`/monitoring/prometheus/metrics`).

- `deeprec_serving_requests_total{model,api,protocol,code}`: finished requests
  by gRPC status code name (`OK`, `NOT_FOUND`, ...);
- `deeprec_serving_request_latency_seconds{model,api}`: a latency histogram;
- `deeprec_serving_batch_size{model}`: rows per executed batch (with batching);
- `deeprec_serving_warmup_requests_total{model}`: warmup records replayed;
- `deeprec_serving_model_versions_available{model}`: versions being served.

The `model` label is the configured name, or `_unknown` for a request naming
no served model, so clients cannot grow the label set without bound.

Example:
  >>> m = Metrics()
  >>> m.observe_request("wdl", "predict", "grpc", "OK", 0.003)
  >>> print([l for l in m.render().splitlines() if l.startswith("deeprec_serving_requests")][0])
  deeprec_serving_requests_total{model="wdl",api="predict",protocol="grpc",code="OK"} 1
"""

from __future__ import annotations

import bisect
import threading

__all__ = ["LATENCY_BUCKETS", "Metrics"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    def escape(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True))


class _Histogram:
    __slots__ = ("buckets", "count", "counts", "total")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.count += 1
        self.total += value

    def lines(self, name: str, labels: str) -> list[str]:
        out, cumulative = [], 0
        prefix = labels + "," if labels else ""
        for bound, n in zip(self.buckets, self.counts, strict=True):
            cumulative += n
            out.append(f'{name}_bucket{{{prefix}le="{bound:g}"}} {cumulative}')
        out.append(f'{name}_bucket{{{prefix}le="+Inf"}} {self.count}')
        out.append(f"{name}_sum{{{labels}}} {self.total:.9g}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


class Metrics:
    """Thread-safe counters and histograms of one server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, ...], int] = {}
        self._latency: dict[tuple[str, ...], _Histogram] = {}
        self._batches: dict[tuple[str, ...], _Histogram] = {}
        self._warmup: dict[tuple[str, ...], int] = {}
        self._available: dict[tuple[str, ...], int] = {}

    def observe_request(self, model: str, api: str, protocol: str, code: str,
                        seconds: float) -> None:
        """Counts one finished request and records its latency."""
        with self._lock:
            key = (model, api, protocol, code)
            self._requests[key] = self._requests.get(key, 0) + 1
            hist = self._latency.get((model, api))
            if hist is None:
                hist = self._latency[(model, api)] = _Histogram(LATENCY_BUCKETS)
            hist.observe(seconds)

    def observe_batch(self, model: str, rows: int) -> None:
        """Records the size of one executed batch."""
        with self._lock:
            hist = self._batches.get((model,))
            if hist is None:
                hist = self._batches[(model,)] = _Histogram(_BATCH_BUCKETS)
            hist.observe(rows)

    def count_warmup(self, model: str, records: int) -> None:
        """Counts warmup records replayed for `model`."""
        with self._lock:
            self._warmup[(model,)] = self._warmup.get((model,), 0) + records

    def set_available_versions(self, model: str, count: int) -> None:
        """Sets how many versions of `model` are being served."""
        with self._lock:
            self._available[(model,)] = count

    def render(self) -> str:
        """All metrics in Prometheus text format (version 0.0.4)."""
        out = []
        with self._lock:
            out += ["# HELP deeprec_serving_requests_total Requests finished, by status code.",
                    "# TYPE deeprec_serving_requests_total counter"]
            names = ("model", "api", "protocol", "code")
            out += [f"deeprec_serving_requests_total{{{_labels(names, k)}}} {v}"
                    for k, v in sorted(self._requests.items())]
            out += ["# HELP deeprec_serving_request_latency_seconds Request latency.",
                    "# TYPE deeprec_serving_request_latency_seconds histogram"]
            for key, hist in sorted(self._latency.items()):
                out += hist.lines("deeprec_serving_request_latency_seconds",
                                  _labels(("model", "api"), key))
            out += ["# HELP deeprec_serving_batch_size Rows per executed batch.",
                    "# TYPE deeprec_serving_batch_size histogram"]
            for key, hist in sorted(self._batches.items()):
                out += hist.lines("deeprec_serving_batch_size", _labels(("model",), key))
            out += ["# HELP deeprec_serving_warmup_requests_total Warmup records replayed.",
                    "# TYPE deeprec_serving_warmup_requests_total counter"]
            out += [f"deeprec_serving_warmup_requests_total{{{_labels(('model',), k)}}} {v}"
                    for k, v in sorted(self._warmup.items())]
            out += ["# HELP deeprec_serving_model_versions_available Versions being served.",
                    "# TYPE deeprec_serving_model_versions_available gauge"]
            out += [f"deeprec_serving_model_versions_available{{{_labels(('model',), k)}}} {v}"
                    for k, v in sorted(self._available.items())]
        return "\n".join(out) + "\n"
