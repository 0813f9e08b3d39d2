"""Tables as files: tidy CSV at full precision, Markdown and LaTeX rounded for reading, each
with the provenance footer. Shared by the software report and the FPGA tables."""

from __future__ import annotations

import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from .provenance import provenance_footer


def _format_cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4f}"
    return str(value)


def _display_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Cells as strings, and the devices pulled out of the table into a note."""
    devices = sorted(df["throughput_device"].dropna().unique()) if "throughput_device" in df else []
    shown = df.drop(columns=["throughput_device"], errors="ignore")
    return shown.apply(lambda column: column.map(_format_cell)), devices


def markdown_table(df: pd.DataFrame) -> str:
    """``df`` as a Markdown table, cells as ``str`` gives them (format them first)."""

    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [line(df.columns), "| " + " | ".join("---" for _ in df.columns) + " |"]
    lines += [line(row) for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _latex_escape(text: str) -> str:
    replacements = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "`": "",
    }
    return "".join(replacements.get(ch, ch) for ch in text)


def device_line(devices: list[str]) -> str:
    """The sentence that keeps measured speeds from being mistaken for FPGA numbers."""
    where = "; ".join(devices) if devices else "no device (throughput not measured)"
    return f"Throughput measured on {where} (this machine), not on an FPGA."


def write_table(
    df: pd.DataFrame, csv_path: str | Path, md_path: str | Path, tex_path: str | Path, provenance: dict, title: str
) -> None:
    """Write ``df`` as tidy CSV (all columns, full precision), Markdown and LaTeX.

    Markdown and LaTeX round numbers for reading, move the ``throughput_device``
    column into a note "Throughput measured on <device> (this machine), not on
    an FPGA." (the provenance device when the column is absent), and end with the
    provenance footer.
    """
    for path in (csv_path, md_path, tex_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv_path, index=False)

    shown, devices = _display_frame(df)
    if "throughput_device" not in df:
        devices = [provenance.get("device", "unknown device")]  # not the config: a provenance record
    notes = [device_line(devices), provenance_footer(provenance)]

    markdown = f"## {title}\n\n{markdown_table(shown)}\n\n" + "\n\n".join(notes) + "\n"
    Path(md_path).write_text(markdown)

    latex = shown.to_latex(index=False, escape=True, caption=_latex_escape(title), position="htbp")
    # The table is wide: scale it to the text width (needs graphicx; booktabs for the rules).
    latex = latex.replace("\\begin{tabular}", "\\resizebox{\\linewidth}{!}{%\n\\begin{tabular}", 1)
    latex = latex.replace("\\end{tabular}\n", "\\end{tabular}}\n", 1)
    footer = "\\par\\footnotesize " + " ".join(_latex_escape(n) for n in notes) + "\n"
    end = latex.rfind("\\end{table}")
    header = "% Needs \\usepackage{booktabs,graphicx}.\n"
    Path(tex_path).write_text(header + latex[:end] + footer + latex[end:])


HTML_STYLE = """<style>
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 0.5em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
caption { text-align: left; font-weight: bold; font-size: 15px; padding: 4px 0; }
p.twindnn-note { color: #444; max-width: 60em; }
</style>"""


def html_table(shown: pd.DataFrame, title: str, notes: list[str] = (), css_class: str = "twindnn",
               styled: bool = False) -> str:
    """``shown`` (cells already formatted) as an HTML fragment: a table of class ``css_class`` with a
    caption, then the notes; ``styled`` adds a style that applies to that class only (for a fragment
    placed inside another page)."""
    body = shown.to_html(index=False, escape=True, border=0, na_rep="n/a", classes=css_class)
    cut = body.index(">") + 1  # after the opening <table ...> tag
    body = body[:cut] + f"\n  <caption>{html.escape(title)}</caption>" + body[cut:]
    notes_html = "".join(f"\n<p class=\"{css_class}-note\">{html.escape(n)}</p>" for n in notes)
    style = ""
    if styled:
        scope = f"table.{css_class}"
        style = (f"<style>\n{scope} {{ border-collapse: collapse; font-size: 13px; display: block; "
                 "max-width: 100%; overflow-x: auto; }\n"
                 f"{scope} th, {scope} td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }}\n"
                 f"{scope} th {{ background: #f0f0f0; }}\n"
                 f"{scope} td:first-child {{ font-weight: bold; }}\n"
                 f"{scope} caption {{ text-align: left; font-weight: bold; padding: 4px 0; }}\n"
                 f"p.{css_class}-note {{ color: #444; font-size: 12px; }}\n</style>\n")
    return style + body + notes_html + "\n"


def html_page(shown: pd.DataFrame, title: str, notes: list[str] = ()) -> str:
    """A standalone HTML page of one table (what the report shows in place of a download link)."""
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">" + HTML_STYLE + "</head><body>\n"
            + html_table(shown, title, notes) + "</body></html>\n")


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with numbers rounded for reading, as in the Markdown tables."""
    return _display_frame(df)[0]
