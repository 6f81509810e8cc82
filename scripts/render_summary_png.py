"""Render docs/example-summary.md to docs/example-summary.png, roughly as GitHub shows a job summary.

    pip install markdown && apt-get install chromium fonts-noto-color-emoji   # development only; not in CI
    python scripts/render_summary_png.py

Markdown → HTML with the `markdown` package (tables, fenced code), GitHub-like CSS, then a headless Chromium
screenshot. The collapsed log block is opened so the picture shows it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CSS = """
body { font-family: -apple-system, 'Segoe UI', 'Noto Sans', Helvetica, Arial, sans-serif, 'Apple Color Emoji',
       'Segoe UI Emoji', 'Noto Color Emoji'; font-size: 14px;
       color: #1f2328; max-width: 1000px; margin: 24px auto; padding: 16px 24px; border: 1px solid #d0d7de;
       border-radius: 6px; line-height: 1.5; }
h2 { font-size: 20px; border-bottom: 1px solid #d8dee4; padding-bottom: 6px; }
h3 { font-size: 16px; margin-top: 20px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; vertical-align: top; }
tr:nth-child(2n) { background: #f6f8fa; }
code { background: rgba(175,184,193,0.2); padding: 1px 4px; border-radius: 4px; font-size: 12px; }
pre { background: #f6f8fa; padding: 10px; border-radius: 6px; font-size: 11px; overflow: hidden; }
pre code { background: none; padding: 0; }
a { color: #0969da; text-decoration: none; }
summary { cursor: pointer; }
"""


def main() -> int:
    try:
        import markdown
    except ImportError:
        print("pip install markdown first", file=sys.stderr)
        return 2
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("needs Chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    text = (ROOT / "docs" / "example-summary.md").read_text("utf-8")
    # Show only the last lines of the log, as a reader would see after opening the block.
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "md_in_html"])
    body = body.replace("<details>", "<details open>")
    page = f"<!doctype html><meta charset='utf-8'><style>{CSS}</style>{body}"
    with tempfile.TemporaryDirectory() as folder:
        html = Path(folder) / "summary.html"
        html.write_text(page, "utf-8")
        out = ROOT / "docs" / "example-summary.png"
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={folder}/profile", "--hide-scrollbars", "--window-size=1100,1900",
                        f"--screenshot={out}", html.as_uri()], check=True, capture_output=True, timeout=60)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
