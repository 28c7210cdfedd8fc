"""Check a report as a reader would: render ``index.html`` in headless Chromium, take a screenshot, and list
the sections shown, the images that failed to load and the page height in CSS pixels in a 1400 px wide window
(what a reader scrolls through; collapsed ``<details>`` count closed).

    python -m colorbench.reports.check RESULTS_DIR [--screenshot PATH]

A copy of the page with a small probe script is rendered (the report itself carries no script); the probe
waits for every image, then writes what it found into the DOM, which Chromium dumps.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from colorbench.core import console
from colorbench.core.errors import BenchError

logger = logging.getLogger(__name__)

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--allow-file-access-from-files", "--virtual-time-budget=20000")
WINDOW = "--window-size=1400,3200"
PROBE = """
<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute("src"));
  const sections = [...document.querySelectorAll("section[id]")].map(s => s.id);
  const out = document.createElement("pre");
  out.id = "colorbench-probe";
  const height = document.documentElement.scrollHeight;
  out.textContent = JSON.stringify({images: images.length, broken: broken, sections: sections, height: height});
  document.body.appendChild(out);
});
</script>
"""


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = find_chromium()
    if binary is None:
        raise BenchError("no Chromium found (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=180)


def check_report(folder: Path, screenshot: Path | None = None) -> dict[str, object]:
    """Render the report of ``folder``; returns {images, broken, sections, height} (and writes the screenshot)."""
    page = folder / "index.html"
    if not page.is_file():
        raise BenchError(f"no report at {page}")
    probe_page = folder / ".index.check.html"
    probe_page.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    try:
        dump = _chromium(WINDOW, "--dump-dom", probe_page.resolve().as_uri())
        match = re.search(r'<pre id="colorbench-probe">(.*?)</pre>', dump.stdout, re.S)
        if match is None:
            raise BenchError(f"Chromium rendered no probe result for {page}: {dump.stderr[-500:]}")
        found = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        if screenshot is not None:
            _chromium(f"--screenshot={screenshot.resolve()}", WINDOW, page.resolve().as_uri())
    finally:
        probe_page.unlink(missing_ok=True)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m colorbench.reports.check", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    console.configure()
    try:
        found = check_report(args.results, args.screenshot)
    except BenchError as exc:
        logger.error("%s", exc)
        return 2
    print(json.dumps(found, indent=2))
    return 1 if found["broken"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
