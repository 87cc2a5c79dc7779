"""``kwspi eval-stream``'s report as lines for a terminal (the JSON is the report itself)."""

from __future__ import annotations

#: How many (heard, said) pairs of false alarms the text report lists.
TOP_SOURCES = 12


def _fmt(x, spec: str = ".3f", none: str = "-") -> str:
    return none if x is None else format(x, spec)


def text_report(r: dict) -> list[str]:
    """The report as lines for a terminal."""
    lines = [
        f"{r['input']}: {r['hours'] * 3600:.1f} s ({r['hours']:.3f} h), model {r['model']}, stride {r['stride_ms']} ms",
        "thresholds  " + ", ".join(f"{k}={v:g}" for k, v in r["thresholds"].items()) + f"; patience {r['patience']}",
        f"recall      {_fmt(r['recall'])} ({r['hits']}/{r['keywords_spoken']} keywords)",
        f"false alarms {r['false_alarms']} ({_fmt(r['fa_per_hour'], '.1f')} per hour)",
        f"latency     median {_fmt(r['latency_median_s'], '.2f')} s, p95 {_fmt(r['latency_p95_s'], '.2f')} s "
        "(detection time minus the end of the word)",
        "",
        f"  {'keyword':<10} {'spoken':>6} {'hits':>5} {'recall':>7} {'false alarms':>13}",
    ]
    for kw, k in r["per_keyword"].items():
        lines.append(f"  {kw:<10} {k['spoken']:>6} {k['hits']:>5} {_fmt(k['recall']):>7} {k['false_alarms']:>13}")
    for key, what in (("per_engine", "engine"), ("per_voice", "voice")):
        if r.get(key):
            lines += ["", f"  {what:<28} {'spoken':>6} {'hits':>5} {'recall':>7} {'false alarms':>13}"]
            lines += [f"  {g:<28} {k['spoken']:>6} {k['hits']:>5} {_fmt(k['recall']):>7} {k['false_alarms']:>13}"
                      for g, k in r[key].items()]
    if r["false_alarm_sources"]:
        lines += ["", "false alarms by the word that filled the window (heard <- said: fired / times said):"]
        lines += [f"  {s['heard']:<8} <- {s['said']:<14} {s['count']:>4}" + (f" / {s['spoken']}" if s["spoken"] else "")
                  for s in r["false_alarm_sources"][:TOP_SOURCES]]
    if "sweep" in r:
        lines += ["", f"  {'threshold':>9} {'recall':>7} {'false alarms':>13} {'per hour':>9}"]
        lines += [f"  {row['threshold']:>9g} {_fmt(row['recall']):>7} {row['false_alarms']:>13} "
                  f"{row['fa_per_hour']:>9.1f}" for row in r["sweep"]["rows"]]
        best, target = r["sweep"]["best"], r["sweep"]["target_fa_per_hour"]
        lines.append(f"lowest threshold with at most {target:g} false alarms per hour: " + (
            f"{best['threshold']:g} (recall {_fmt(best['recall'])})" if best else "none of those tried"))
    return lines
