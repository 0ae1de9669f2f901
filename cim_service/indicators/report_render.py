"""Write a town's progress report (:class:`~cim_service.indicators.report.TownReport`) as PDF, HTML or XLSX.

Chinese first, English second. Charts are drawn with matplotlib (Agg, no display) in the Noto Sans CJK font
installed by ``scripts/bootstrap`` (``fonts-noto-cjk``), embedded as TrueType so the PDF's text is text (search,
copy, ``pdftotext``). The PDF is written with matplotlib's ``PdfPages``; the HTML page embeds its charts as
PNG ``data:`` URLs (no request leaves the file); the workbook holds the same tables. Nothing goes to the network.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cim_service.excel import excel_safe
from cim_service.indicators.report import TownReport
from cim_service.indicators.results import TOWNS_KEY

#: the fonts tried, in order (fonts-noto-cjk)
CJK_FONTS = (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
             Path("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"))
FORMATS = ("pdf", "html", "xlsx")
PAGE = (11.69, 8.27)  # A4 landscape, inches
PER_PAGE = 6


class ReportFontMissing(RuntimeError):
    """The Noto CJK font is not installed (``scripts/bootstrap`` installs fonts-noto-cjk)."""


@contextmanager
def _style() -> Iterator[None]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager, rc_context

    path = next((p for p in CJK_FONTS if p.exists()), None)
    if path is None:
        raise ReportFontMissing(f"no CJK font at {', '.join(map(str, CJK_FONTS))}; install fonts-noto-cjk")
    font_manager.fontManager.addfont(str(path))
    name = font_manager.FontProperties(fname=str(path)).get_name()
    with rc_context({"font.family": [name], "pdf.fonttype": 42, "axes.unicode_minus": False,
                     "font.size": 9}):
        yield


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}{unit}"
    return f"{value:,.0f}{unit}"


def _track(flag: bool | None) -> str:
    return {True: "是 on track", False: "否 behind", None: "– no data"}[flag]


def summary_rows(report: TownReport) -> list[dict[str, Any]]:
    """One row per indicator: name, unit, value, target, gap, projection, on track, rank among towns."""
    rows = []
    for item in report.indicators:
        now, t = item["now"], item["trajectory"]
        proj = t.get("projection") or {}
        area = (now.get(TOWNS_KEY) or [now])[0]  # the town's own gap sentence
        rows.append({"指标 indicator": now["name_zh"], "id": now["id"], "单位 unit": now["unit"],
                     "现值 value": now.get("value"), "目标 target": now.get("target"),
                     "缺口 gap": area.get("gap_zh") or now.get("gap"), "gap_en": area.get("gap"),
                     f"{t['target_year']}年预测 projection": proj.get("value"),
                     "按进度 on track": t.get("on_track"),
                     "排名 rank": f"{t.get('rank')}/{item['towns_ranked']}",
                     "每年还需 more per year": t.get("more_per_year"),
                     "预测方法 method": proj.get("method")})
    return rows


def _title(report: TownReport) -> tuple[str, str]:
    return (f"{report.town}数字化转型规划指标进展报告",
            f"Progress report of {report.town} on the 2021–2025 digital-transformation plan, "
            f"as of {report.until.isoformat()}")


def _trajectory_axes(ax: Any, item: dict[str, Any]) -> None:
    now, t = item["now"], item["trajectory"]
    pts = [(v["year"] + (0 if v["date"].endswith("12-31") else -0.5), v["value"]) for v in t["values"]
           if v["value"] is not None]
    if pts:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color="#1f5fbf", lw=2, label="实际 actual")
    if t.get("target") is not None:
        ax.axhline(t["target"], color="#c0392b", ls="--", lw=1.2, label=f"目标 target {_num(t['target'])}")
        if t.get("baseline") is not None and t["baseline"] < t["target"]:  # no path when met at the baseline
            base_year = int(t["baseline_date"][:4])
            ax.plot([base_year, t["target_year"]], [t["baseline"], t["target"]], color="#999999", ls=":",
                    lw=1, label="均衡进度 even pace")
    proj = t.get("projection") or {}
    if proj.get("value") is not None and pts:
        ax.plot([pts[-1][0], t["target_year"]], [pts[-1][1], proj["value"]], color="#e67e22", ls="--", lw=1.5,
                marker="s", label=f"预测 projection {_num(proj['value'])}")
    flag = {True: "[按进度 on track]", False: "[落后 behind]"}.get(t.get("on_track"), "")
    ax.set_title(f"{now['name_zh']} {flag}\n{now['name_en']} ({now['unit']})", fontsize=9,
                 color="#c0392b" if t.get("on_track") is False else "#222222")
    ax.set_xticks(range(int(t["baseline_date"][:4]), t["target_year"] + 1))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="upper left")


def trajectory_figures(report: TownReport) -> list[Any]:
    """Figures of the trajectories, ``PER_PAGE`` indicators each."""
    import matplotlib.pyplot as plt

    figs = []
    items = report.indicators
    for start in range(0, len(items), PER_PAGE):
        fig, axes = plt.subplots(2, 3, figsize=PAGE)
        fig.suptitle(f"{report.town} 指标轨迹与预测 — trajectories and projections "
                     f"(linear on the last {report.last_n} values)", fontsize=12)
        for ax, item in zip(axes.flat, items[start:start + PER_PAGE], strict=False):
            _trajectory_axes(ax, item)
        for ax in list(axes.flat)[len(items[start:start + PER_PAGE]):]:
            ax.axis("off")
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        figs.append(fig)
    return figs


def summary_figure(report: TownReport) -> Any:
    """The first page: title, overview sentence and the table of indicators."""
    import matplotlib.pyplot as plt

    zh, en = _title(report)
    fig = plt.figure(figsize=PAGE)
    fig.text(0.5, 0.95, zh, ha="center", fontsize=18, weight="bold")
    fig.text(0.5, 0.915, en, ha="center", fontsize=10, color="#444444")
    fig.text(0.5, 0.88, f"{len(report.indicators)}项指标中{report.on_track}项按进度推进 — "
                        f"{report.on_track} of {len(report.indicators)} indicators on track",
             ha="center", fontsize=11)
    cols = ["指标 indicator", "单位 unit", "现值 value", "目标 target", "2025年预测 projection", "按进度 on track",
            "排名 rank", "缺口 gap"]
    cells = []
    for r in summary_rows(report):
        proj = next(v for k, v in r.items() if k.endswith("projection"))
        gap = str(r["缺口 gap"] or "")
        gap = gap[:34] + ("…" if len(gap) > 34 else "")
        cells.append([r["指标 indicator"], r["单位 unit"], _num(r["现值 value"]), _num(r["目标 target"]), _num(proj),
                      _track(r["按进度 on track"]), r["排名 rank"], gap])
    ax = fig.add_axes((0.02, 0.04, 0.96, 0.8))
    ax.axis("off")
    table = ax.table(cellText=cells, colLabels=cols, loc="upper center", cellLoc="left",
                     colWidths=[0.17, 0.07, 0.08, 0.08, 0.1, 0.09, 0.08, 0.33])
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 1.45)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("#dfe8f5")
        elif cells[row - 1][5].startswith("否"):
            cell.set_facecolor("#fbe3e0")
    return fig


def gap_map_figure(report: TownReport) -> Any:
    """The town's map of gaps: its outline and the features of every gap layer in it."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=PAGE)
    fig.suptitle(f"{report.town} 指标缺口分布图 — map of gaps", fontsize=13)
    handles = []
    if not report.outline.empty:
        report.outline.boundary.plot(ax=ax, color="#333333", lw=1.2)
    for gap in report.gaps:
        if gap.frame.empty:
            continue
        rgb = to_hex([c / 255 for c in gap.fill[:3]])
        alpha = max((gap.fill + [255])[3] / 255, 0.45)
        gap.frame.plot(ax=ax, color=rgb, alpha=alpha, markersize=6, edgecolor=rgb, linewidth=0.3)
        handles.append(Patch(color=rgb, alpha=alpha, label=f"{gap.title_zh} {gap.title_en} ({len(gap.frame)})"))
    if handles:
        ax.legend(handles=handles, loc="lower left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "无缺口要素 no gap features", transform=ax.transAxes, ha="center")
    ax.set_aspect(1 / 0.857)  # 1° of longitude is 0.857 of 1° of latitude at 31° N
    ax.ticklabel_format(useOffset=False)
    ax.set_xlabel("经度 longitude")
    ax.set_ylabel("纬度 latitude")
    return fig


def provenance_figure(report: TownReport) -> Any:
    """The last page: where the data come from (committed ingest batches per input layer)."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=PAGE)
    fig.text(0.5, 0.94, "数据来源 — provenance (committed ingest batches per input layer)", ha="center", fontsize=13)
    cols = ["图层 layer", "id", "批次 batches", "首次入库 first load", "最近入库 last load", "最近文件 last file",
            "行 rows"]
    cells = [[p["title_zh"], p["layer"], str(p["batches"]), p["first_loaded"] or "–", p["last_loaded"] or "–",
              (p["last_file"] or "–")[:40], f"{p['rows']:,}"] for p in report.provenance]
    ax = fig.add_axes((0.03, 0.05, 0.94, 0.85))
    ax.axis("off")
    if cells:
        table = ax.table(cellText=cells, colLabels=cols, loc="upper center", cellLoc="left",
                         colWidths=[0.16, 0.16, 0.08, 0.12, 0.12, 0.28, 0.08])
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.scale(1, 1.4)
    return fig


def figures(report: TownReport) -> list[Any]:
    """Every page of the report, in order."""
    return [summary_figure(report), *trajectory_figures(report), gap_map_figure(report), provenance_figure(report)]


def write_pdf(report: TownReport, path: Path) -> None:
    """The report as a PDF (one figure per page)."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with _style():
        zh, en = _title(report)
        with PdfPages(path, metadata={"Title": f"{zh} — {en}", "Creator": "Minhang CIM"}) as pdf:
            for fig in figures(report):
                pdf.savefig(fig)
                plt.close(fig)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cell_text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _num(value)
    return str(value)


def _table_html(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>–</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell_text(v))}</td>" for v in r.values()) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(report: TownReport, path: Path) -> None:
    """The report as one self-contained HTML page (charts embedded as PNG data URLs)."""
    with _style():
        zh, en = _title(report)
        charts = [_png(f) for f in trajectory_figures(report)]
        gap_map = _png(gap_map_figure(report))
    summary = [{k: v for k, v in r.items() if k != "gap_en"} for r in summary_rows(report)]
    page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{html.escape(zh)}</title>
<style>body{{font-family:"Noto Sans CJK SC",sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}th{{background:#dfe8f5}}img{{max-width:100%}}</style>
</head><body>
<h1>{html.escape(zh)}</h1><p>{html.escape(en)}</p>
<p>{len(report.indicators)}项指标中{report.on_track}项按进度推进 — {report.on_track} of {len(report.indicators)}
indicators on track.</p>
<h2>指标概览 Indicators</h2>{_table_html(summary)}
<h2>指标轨迹与预测 Trajectories and projections</h2>{"".join(f'<img alt="trajectories" src="{c}">' for c in charts)}
<h2>指标缺口分布图 Map of gaps</h2><img alt="map of gaps" src="{gap_map}">
<h2>数据来源 Provenance</h2>{_table_html(report.provenance)}
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def write_xlsx(report: TownReport, path: Path) -> None:
    """The report's tables as a workbook: overview, yearly values, provenance."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "指标概览"
    rows = summary_rows(report)
    if rows:
        ws.append(list(rows[0]))
        for r in rows:
            ws.append([excel_safe(v) for v in r.values()])
    ws2 = wb.create_sheet("年度轨迹")
    days = [v["date"] for v in (report.indicators[0]["trajectory"]["values"] if report.indicators else [])]
    ws2.append(["id", "指标", "目标", *days, "预测", "按进度"])
    for item in report.indicators:
        t = item["trajectory"]
        ws2.append([item["now"]["id"], item["now"]["name_zh"], t.get("target"), *[v["value"] for v in t["values"]],
                    (t.get("projection") or {}).get("value"), t.get("on_track")])
    ws3 = wb.create_sheet("数据来源")
    if report.provenance:
        ws3.append(list(report.provenance[0]))
        for p in report.provenance:
            ws3.append([excel_safe(v) for v in p.values()])
    wb.save(path)


def write_report(report: TownReport, path: Path) -> str:
    """Write the report in the format its suffix names (.pdf, .html, .xlsx); return the format."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"--out {path.name}: unsupported format {path.suffix!r}; use .pdf, .html or .xlsx")
    {"pdf": write_pdf, "html": write_html, "xlsx": write_xlsx}[fmt](report, path)
    return fmt
