"""``torchdevice report``: the redirect report (docs/launcher.md) made readable.

    torchdevice report FILE... [--html PAGE]

Prints the call sites of one or more report files (a multi-process run writes one per process)
grouped by file, with their counts; ``--html PAGE`` also writes a single self-contained page
(inline style, no script, nothing fetched) that shows each site with its source line. The
pytest plugin prints its session summary with ``text_lines``.
"""

import argparse
import html
import json
import linecache
import os
import sys

KEY = ("file", "line", "function", "what", "requested", "target", "narrowed")


def load(paths):
    """The reports at `paths`; a file that cannot be read or is no report raises ValueError."""
    reports = []
    for path in paths:
        try:
            with open(path) as f:
                document = json.load(f)
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read report {path!r}: {error}") from error
        if not isinstance(document, dict) or not isinstance(document.get("sites"), list):
            raise ValueError(f"{path!r} is not a torchdevice report (no 'sites' list)")
        reports.append(document)
    return reports


def merge(site_lists):
    """One list of sites, the same site of several processes counted once with their counts
    added; ordered by file, then line."""
    merged = {}
    for sites in site_lists:
        for site in sites:
            site = {"narrowed": "", **site}  # reports written before the float64 policy
            key = tuple(site[k] for k in KEY)
            if key in merged:
                merged[key]["count"] += site["count"]
            else:
                merged[key] = site
    return sorted(merged.values(), key=lambda s: (s["file"], s["line"], s["what"], s["requested"]))


def by_file(sites):
    """[(file, sites of that file)], in the order of `sites`."""
    groups = {}
    for site in sites:
        groups.setdefault(site["file"], []).append(site)
    return list(groups.items())


def _plural(n, word, plural=None):
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _shown(path, root):
    if root and os.path.isabs(path):
        relative = os.path.relpath(path, root)
        if not relative.startswith(os.pardir):
            return relative
    return path


def text_lines(sites, root=None):
    """The sites grouped by file: a line per file with its totals, then one per site (line,
    function, what asked, requested -> target, the float64 policy's narrowing if any, count).
    Paths under `root` are shown relative."""
    if not sites:
        return ["no redirected call sites"]
    lines = [f"{_plural(len(sites), 'call site')}, "
             f"{_plural(sum(s['count'] for s in sites), 'redirected call')}"]
    for path, group in by_file(sites):
        lines.append(f"{_shown(path, root)}: {_plural(len(group), 'site')}, "
                     f"{_plural(sum(s['count'] for s in group), 'call')}")
        line_width = max(len(str(s["line"])) for s in group)
        function_width = max(len(s["function"]) for s in group)
        what_width = max(len(s["what"]) for s in group)
        for s in group:
            lines.append(f"  {s['line']:>{line_width}}  {s['function']:<{function_width}}  "
                         f"{s['what']:<{what_width}}  {s['requested']} -> {s['target']}  "
                         + (f"({s['narrowed']})  " if s.get("narrowed") else "")
                         + f"x{s['count']}")
    return lines


def _describe(reports, paths):
    processes = ", ".join(
        f"{os.path.basename(path)} (pid {r.get('pid')}"
        + (f", rank {r['rank']}" if r.get("rank") is not None else "") + ")"
        for path, r in zip(paths, reports))
    torch_versions = sorted({str(r.get("torch")) for r in reports})
    targets = sorted({str(r.get("target")) for r in reports})
    return (f"{_plural(len(reports), 'process', 'processes')}: {processes}; torch {', '.join(torch_versions)}; "
            f"target {', '.join(targets)}")


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; word-break: break-all; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; vertical-align: top; }
td.line, td.count { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 13px/1.4 ui-monospace, monospace; white-space: pre-wrap; }
td.source code { background: #f6f6f6; display: block; padding: 0.1em 0.4em; }
.missing { color: #888; font-style: italic; }
"""


def html_page(reports, paths):
    """A self-contained page: a section per file, a row per site with its source line."""
    sites = merge(r["sites"] for r in reports)
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           "<title>torchdevice redirect report</title>", f"<style>{_STYLE}</style>", "</head>",
           "<body>", "<h1>torchdevice redirect report</h1>",
           f"<p>{e(_describe(reports, paths))}</p>",
           f"<p>{e(text_lines(sites)[0])}</p>"]
    for path, group in by_file(sites):
        out.append(f"<h2>{e(path)}</h2>")
        out.append("<table><thead><tr><th>line</th><th>source</th><th>function</th>"
                   "<th>what asked</th><th>requested</th><th>landed on</th><th>precision</th>"
                   "<th>count</th>"
                   "</tr></thead><tbody>")
        for s in group:
            source = linecache.getline(path, s["line"]).strip() if os.path.isfile(path) else ""
            source_cell = (f"<code>{e(source)}</code>" if source
                           else '<span class="missing">source not available</span>')
            out.append(
                f'<tr><td class="line">{s["line"]}</td><td class="source">{source_cell}</td>'
                f"<td><code>{e(s['function'])}</code></td><td><code>{e(s['what'])}</code></td>"
                f"<td>{e(s['requested'])}</td><td>{e(s['target'])}</td>"
                f"<td>{e(s.get('narrowed', ''))}</td>"
                f'<td class="count">{s["count"]}</td></tr>')
        out.append("</tbody></table>")
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="torchdevice report",
        description="Print the redirect report(s) written by `torchdevice run --report FILE` "
                    "(or TORCHDEVICE_REPORT), grouped by file.")
    parser.add_argument("files", nargs="+", metavar="FILE", help="report JSON file(s)")
    parser.add_argument("--html", metavar="PAGE", help="also write a self-contained HTML page")
    options = parser.parse_args(argv)
    try:
        reports = load(options.files)
    except ValueError as error:
        parser.exit(2, f"torchdevice report: error: {error}\n")
    print(_describe(reports, options.files))
    for line in text_lines(merge(r["sites"] for r in reports), root=os.getcwd()):
        print(line)
    if options.html:
        with open(options.html, "w", encoding="utf-8") as page:
            page.write(html_page(reports, options.files))
        print(f"wrote {options.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
