"""The HTML report in a real browser: headless Chromium (Debian's `chromium` package) finds the three figures,
decodes their embedded images, and draws them under the page's own Content-Security-Policy."""

from __future__ import annotations

import html.parser
import json
import pathlib
import re
import shutil
import subprocess

import pytest

import realparts
from assay.qualification import simulate
from assay.report import command

CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.integration,
    realparts.needs("Chromium", CHROMIUM, "run hack/debian-packages.sh as root (Debian's chromium)"),
]

FIGURES = {"plot-bounds", "plot-scores", "plot-cost"}
CANDIDATE_RGB = (0xDD, 0x84, 0x52)  # figures.CANDIDATE_COLOR: only the plots use it, never the page's CSS

# Run by a test after the page has loaded: records what the browser made of each image.
PROBE = """<script>
addEventListener("load", () => {
  for (const img of document.images) {
    const decoded = img.complete && img.naturalWidth > 0;
    img.setAttribute("data-decoded", decoded ? img.naturalWidth + "x" + img.naturalHeight : "no");
  }
  document.body.setAttribute("data-probe", "done");
});
</script>"""


class Dom(html.parser.HTMLParser):
    """Figures and their images' attributes in a dumped DOM."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.figures: dict[str, list[dict[str, str]]] = {}
        self.body: dict[str, str] = {}
        self._figure: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        if tag == "figure":
            self._figure = attributes.get("id", "")
            self.figures[self._figure] = []
        elif tag == "img" and self._figure is not None:
            self.figures[self._figure].append(attributes)
        elif tag == "body":
            self.body = attributes

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> pathlib.Path:
    """An HTML report written by `assay report --evidence` from simulated evidence with token and latency data."""
    directory = tmp_path_factory.mktemp("report")
    scenario = simulate.Scenario(mu=0.56, control_rate=0.08, agreement_rate=0.1)
    lines = []
    for record in simulate.simulate_evidence(400, scenario, seed=7):
        data = record.to_dict()
        data["tokens"] = {
            side: {"prompt": 250, "completion": 180 + record.seq % 40} for side in ("baseline", "candidate")
        }
        data["latency_ms"] = {"baseline": 1200.0 + record.seq % 300, "candidate": 450.0 + record.seq % 200}
        lines.append(data)
    evidence = directory / "evidence.jsonl"
    evidence.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = directory / "report.html"
    argv = [
        "--evidence",
        str(evidence),
        "--baseline-model",
        "gpt-4o",
        "--candidate-model",
        "gpt-4o-mini",
        "-o",
        str(out),
    ]
    assert command.main(argv) == 0
    return out


def _chromium(tmp_path: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)


def test_browser_finds_every_figure_and_decodes_its_image(report_file, tmp_path):
    # A copy with a probe script; the report itself has no script, and its CSP would refuse one.
    page = report_file.read_text()
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))

    result = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())

    dom = Dom(result.stdout)
    assert dom.body.get("data-probe") == "done", "the page did not finish loading"
    assert set(dom.figures) == FIGURES
    for figure_id, images in dom.figures.items():
        assert len(images) == 1, figure_id
        width, height = (int(v) for v in images[0]["data-decoded"].split("x"))
        assert width >= 400 and height >= 200, (figure_id, width, height)


def test_report_draws_its_plots_under_its_own_content_security_policy(report_file, tmp_path):
    from matplotlib import image

    screenshot = tmp_path / "report.png"

    _chromium(
        tmp_path, "--window-size=1200,4200", "--hide-scrollbars", f"--screenshot={screenshot}", report_file.as_uri()
    )

    pixels = image.imread(screenshot)[:, :, :3]
    red, green, blue = (abs(pixels[:, :, i] * 255 - CANDIDATE_RGB[i]) < 12 for i in range(3))
    candidate_pixels = int((red & green & blue).sum())
    assert candidate_pixels > 5_000, f"plots not drawn: {candidate_pixels} pixels of the candidate's colour"
