"""Reads a llmload result with HdrHistogram's Python reader (hdrhistogram on PyPI):
prints, per stage and distribution, what it decodes: the count, and every recorded
value (its bucket's highest equivalent) with its count."""
import json
import sys

from hdrh.histogram import HdrHistogram

result = json.load(open(sys.argv[1]))
out = {}
for stage in result["stages"]:
    for name, dist in stage["histograms"].items():
        h = HdrHistogram.decode(dist["hdr"], b64_wrap=True)
        out[f"{stage['name']}/{name}"] = {
            "count": h.get_total_count() + dist.get("zeros", 0),
            "recorded": [[i.value_iterated_to, i.count_at_value_iterated_to] for i in h.get_recorded_iterator()],
        }
print(json.dumps(out))
