"""The one palette and the one stylesheet of every report page and of the Models view.

The SVG figures (:mod:`airflow_mlops.reports.figures`) draw with the same colours as the
stylesheet: reference/negatives/candidate in blue, current/positives/champion in orange, drift,
failures and thresholds in red, passes in green, the data-quality alarm in purple.

The pages carry this stylesheet inline, once, and their Content-Security-Policy (:data:`CSP`)
allows that one stylesheet by its sha256 and nothing else: no script, no other style, no image,
font, frame or fetch from anywhere. So the stylesheet must stay the exact text hashed here: the
page template inserts :data:`STYLESHEET` verbatim.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = [
    "ALARM_COLOR",
    "ALIAS_COLOR",
    "CHECK_ERROR",
    "CHECK_FAILED",
    "CHECK_OK",
    "CHECK_UNCHECKED",
    "CSP",
    "CURRENT_COLOR",
    "DRIFT_COLOR",
    "FONT",
    "GRID_COLOR",
    "MUTED_COLOR",
    "NEUTRAL_COLOR",
    "OK_COLOR",
    "PANEL_COLOR",
    "REFERENCE_COLOR",
    "STYLESHEET",
    "STYLESHEET_HASH",
    "TEXT_COLOR",
]

# --- palette ---------------------------------------------------------------------------------

REFERENCE_COLOR = "#4c78a8"  # the reference, negatives, the candidate
CURRENT_COLOR = "#f58518"  # the current window or batch, positives, the champion
DRIFT_COLOR = "#d62728"  # drift, failures, thresholds and cuts
OK_COLOR = "#2ca02c"
ALARM_COLOR = "#9467bd"  # the data-quality alarm
NEUTRAL_COLOR = "#7f8c9a"
GRID_COLOR = "#e3e6ea"
PANEL_COLOR = "#f6f7f9"
TEXT_COLOR = "#222222"
MUTED_COLOR = "#666666"
FONT = "system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"

# The Models view's own colours (its look predates the reports'; a browser test compares it with a
# reference screenshot): badges for aliases and for check results.
ALIAS_COLOR = "#2563eb"
CHECK_OK = ("#d1fae5", "#065f46")  # (background, text)
CHECK_FAILED = ("#fee2e2", "#991b1b")
CHECK_ERROR = ("#fef3c7", "#92400e")
CHECK_UNCHECKED = ("#e5e7eb", "#374151")

_DRIFT_BACKGROUND = "#fdeeee"
_OK_BACKGROUND = "#eef8ee"
_ALARM_BACKGROUND = "#f3eefa"
_OK_TEXT = "#1d6b1d"
_OK_TAG = "#e3f2e3"

# --- the stylesheet --------------------------------------------------------------------------

STYLESHEET = f"""
body{{font:14px/1.45 {FONT};color:{TEXT_COLOR};max-width:1180px;margin:0 auto;padding:16px 24px 40px}}
h1{{font-size:22px;margin:4px 0}}
h2{{font-size:18px;margin:30px 0 8px;padding-bottom:4px;border-bottom:1px solid {GRID_COLOR}}}
h3{{font-size:15px;margin:14px 0 4px;overflow-wrap:anywhere}}
.muted{{color:{MUTED_COLOR}}}
.fail{{color:{DRIFT_COLOR};font-weight:600}}
.pass{{color:{_OK_TEXT};font-weight:600}}
.banner{{border-left:6px solid;border-radius:6px;padding:10px 16px;margin:14px 0}}
.banner.ok{{background:{_OK_BACKGROUND};border-color:{OK_COLOR}}}
.banner.drift,.banner.failed{{background:{_DRIFT_BACKGROUND};border-color:{DRIFT_COLOR}}}
.banner.alarm{{background:{_ALARM_BACKGROUND};border-color:{ALARM_COLOR}}}
.banner .verdict{{font-size:19px;font-weight:700}}
.banner p{{margin:4px 0 0}}
.banner ul{{margin:6px 0 0;padding-left:20px}}
table{{border-collapse:collapse;margin:6px 0;font-size:13px}}
th,td{{border-bottom:1px solid {GRID_COLOR};padding:3px 12px 3px 4px;text-align:left;vertical-align:top}}
th{{background:{PANEL_COLOR};font-weight:600}}
td.num{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}
tr.drifted td,tr.failed td,tr.suspect td{{background:{_DRIFT_BACKGROUND}}}
tr.drifted td:first-child,tr.failed td:first-child,tr.suspect td:first-child{{box-shadow:inset 3px 0 {DRIFT_COLOR}}}
tr.neighbour td{{color:{MUTED_COLOR}}}
td.bad{{background:#f8c9c9;font-weight:600}}
.tag{{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;font-weight:600}}
.tag.drift,.tag.failed{{background:{DRIFT_COLOR};color:#fff}}
.tag.ok,.tag.passed{{background:{_OK_TAG};color:{_OK_TEXT}}}
.tag.alarm{{background:{ALARM_COLOR};color:#fff}}
details.feature,.failure,.profile{{border:1px solid {GRID_COLOR};border-radius:6px;margin:8px 0;padding:4px 12px}}
details.feature.drifted,.failure{{border-color:{DRIFT_COLOR}}}
details summary{{cursor:pointer;font-weight:600}}
.feature-body,.profile-body{{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}}
figure{{margin:8px 0}}
svg{{max-width:100%;height:auto}}
nav a{{margin-right:14px}}
dl.context{{display:grid;grid-template-columns:max-content auto;gap:2px 14px;margin:8px 0}}
dl.context dt{{font-weight:600}}
dl.context dd{{margin:0;overflow-wrap:anywhere}}
code{{font-size:12px;overflow-wrap:anywhere}}
pre{{font-size:12px;background:{PANEL_COLOR};border-radius:6px;padding:8px 12px;overflow-x:auto}}
body.models{{font:16px/normal {FONT};color:#1f2933;background:#fff;max-width:none;margin:1.5rem;padding:0}}
body.models h1{{font-size:1.6rem;margin:0 0 .3rem}}
body.models p.lead{{color:#52606d;margin:0 0 1.2rem}}
body.models table{{width:100%;font-size:.9rem;margin:0}}
body.models th,body.models td{{border-bottom:1px solid #e4e7eb;padding:.4rem .5rem}}
body.models th{{background:#f5f7fa}}
body.models code{{font-size:.8rem;overflow-wrap:normal}}
section.model{{border:1px solid #d9e2ec;border-radius:8px;padding:1rem;margin-bottom:1.2rem}}
section.model h2{{font-size:1.2rem;margin:0 0 .4rem;padding:0;border:0}}
section.model .meta{{color:#52606d;font-size:.9rem;margin-bottom:.6rem}}
section.model .drift{{padding:.4rem .6rem;border-radius:6px;background:#f0f4f8;margin-bottom:.6rem}}
section.model .drift.drifted,section.model .drift.alarm{{background:#fde8e8}}
.alias{{display:inline-block;background:{ALIAS_COLOR};color:#fff;border-radius:10px;padding:0 .5rem;margin:0 .2rem .2rem 0;font-size:.8rem}}
.check{{display:inline-block;border-radius:4px;padding:0 .35rem;margin-bottom:.2rem}}
.check.ok{{background:{CHECK_OK[0]};color:{CHECK_OK[1]}}}
.check.failed{{background:{CHECK_FAILED[0]};color:{CHECK_FAILED[1]};font-weight:600}}
.check.error{{background:{CHECK_ERROR[0]};color:{CHECK_ERROR[1]}}}
.check.unchecked{{background:{CHECK_UNCHECKED[0]};color:{CHECK_UNCHECKED[1]}}}
ul.plain{{list-style:none;margin:0;padding:0}}
.errors{{color:{CHECK_FAILED[1]}}}
"""

#: The CSP source that allows exactly :data:`STYLESHEET` (and no other inline style).
STYLESHEET_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLESHEET.encode("utf-8")).digest()).decode()

#: The policy of every page: nothing loads, no script runs, the one stylesheet applies; no
#: ``<base>`` and no form submission. Links still navigate (the Models view's do).
CSP = f"default-src 'none'; style-src '{STYLESHEET_HASH}'; base-uri 'none'; form-action 'none'"
