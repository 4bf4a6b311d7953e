"""The Models view in a real browser: a real api-server (simple auth manager with a password
user, no all-admins shortcut) with the plugin, a real MLflow server holding a signed champion,
and headless Chromium logged in through ``POST /auth/token`` and the ``_token`` cookie.

Checks the DOM (the champion's alias, metrics, gates, "signature: verified", an ML-BOM link
that downloads valid CycloneDX JSON), that anonymous and forged requests are refused, and a
screenshot against the committed reference (same size, the expected regions rendered, loosely
similar pixels -- not pixel-exact). Set ``MLOPS_UPDATE_SCREENSHOTS=1`` to rewrite the reference.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from tests.integration.airflow_stack import airflow_stack
from tests.integration.conftest import ROOT, register_signed, running_mlflow
from tests.integration.test_lifecycle_dag import airflow_env
from tests.unit.ui.models_registry import add_metrics_and_mlbom, log_monitor_run

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REFERENCE = ROOT / "tests" / "integration" / "screenshots" / "models_view.png"
WINDOW = (1280, 900)
MODEL = "it-models-view"
PIPELINE = "it-models"
USER, PASSWORD = "reviewer", "a-long-test-password"


def _plugin_entry_point_installed() -> bool:
    return any(ep.value.startswith("airflow_mlops.ui.plugin") for ep in entry_points(group="airflow.plugins"))


def _get(url: str, *, token: str | None = None, cookie: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if cookie:
        request.add_header("Cookie", f"_token={cookie}")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _token(url: str) -> str:
    body = json.dumps({"username": USER, "password": PASSWORD}).encode()
    request = urllib.request.Request(
        f"{url}/auth/token", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return str(json.load(resp)["access_token"])


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium (Debian's); missing browser or driver is a failure, not a skip."""
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        f"the Models view test needs {CHROMIUM} and {CHROMEDRIVER} (scripts/system_deps.sh installs them)"
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="mlops-chromium-", dir=tmp_path)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    service = Service(CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_window_size(*WINDOW)
        yield driver
    finally:
        driver.quit()  # stops the chromedriver process this fixture started (and its browser)


def _compare_screenshot(shot: Path, regions: dict[str, dict[str, float]]) -> None:
    from PIL import Image, ImageChops, ImageStat

    image = Image.open(shot).convert("RGB")
    for name, rect in regions.items():  # every expected region was laid out with a size
        assert rect["width"] > 50 and rect["height"] > 10, (name, rect)
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20) or []}
    # The alias badge (blue) and a passed check (green) were painted, not just laid out.
    assert any(abs(r - 0x25) < 8 and abs(g - 0x63) < 8 and abs(b - 0xEB) < 8 for r, g, b in colours)
    assert any(abs(r - 0xD1) < 6 and abs(g - 0xFA) < 6 and abs(b - 0xE5) < 6 for r, g, b in colours)
    if os.environ.get("MLOPS_UPDATE_SCREENSHOTS") == "1":
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, REFERENCE)
    assert REFERENCE.exists(), f"no reference screenshot {REFERENCE}; run with MLOPS_UPDATE_SCREENSHOTS=1"
    reference = Image.open(REFERENCE).convert("RGB")
    assert reference.size == image.size, (reference.size, image.size)
    # Loose: dates, digests and run ids differ between runs; the layout must not.
    diff = ImageStat.Stat(ImageChops.difference(reference, image).convert("L")).mean[0]
    assert diff < 12, f"the Models view looks different from {REFERENCE} (mean pixel difference {diff:.1f})"


def test_the_models_view_in_a_browser(
    tmp_path: Path, signing_keys: tuple[bytes, bytes], browser: Any
) -> None:
    from mlflow import MlflowClient
    from selenium.webdriver.common.by import By

    mlflow_root = tmp_path / "mlflow"
    mlflow_root.mkdir()
    with running_mlflow(mlflow_root) as server:
        client = MlflowClient(tracking_uri=server.url)
        champion = register_signed(
            client, tmp_path, signing_keys, model=MODEL, tag="it/ui-1", pipeline=PIPELINE
        )
        add_metrics_and_mlbom(client, tmp_path, MODEL, champion, {"roc_auc": 0.9132, "recall": 0.7051})
        other = register_signed(client, tmp_path, signing_keys, model=MODEL, tag="it/ui-2", pipeline=PIPELINE)
        client.set_registered_model_alias(MODEL, "champion", champion)
        log_monitor_run(
            client,
            experiment=PIPELINE,
            pipeline=PIPELINE,
            model=MODEL,
            version=champion,
            drifted=False,
            share=0.1,
        )
        client.create_registered_model(f"{MODEL}.mlops-lock.champion", tags={"mlops.pipeline": PIPELINE})

        dags = tmp_path / "dags"
        dags.mkdir()
        plugins = tmp_path / "plugins"
        plugins.mkdir()
        if not _plugin_entry_point_installed():  # until the package's entry point is installed
            (plugins / "mlops_models_view.py").write_text(
                "from airflow_mlops.ui.plugin import ModelsViewPlugin  # noqa: F401\n"
            )
        passwords = tmp_path / "passwords.json"
        passwords.write_text(json.dumps({USER: PASSWORD}))
        env = airflow_env(tmp_path, server.url, signing_keys, dags)
        with airflow_stack(
            tmp_path,
            env,
            components=("api-server",),
            AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:viewer",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        ) as stack:
            view = f"{stack.url}/mlops/models/"
            stack.wait_for(
                "the api-server", 180, lambda: _get(f"{stack.url}/api/v2/monitor/health")[0] == 200
            )

            # Refused without a user, and with a forged token.
            assert _get(view)[0] == 401
            assert _get(view, cookie="not-a-jwt")[0] == 403
            assert _get(f"{stack.url}/mlops/models/{MODEL}/versions/{champion}/mlbom.cdx.json")[0] == 401

            token = _token(stack.url)
            plugins_info = json.loads(_get(f"{stack.url}/api/v2/plugins", token=token)[1])
            (ours,) = [p for p in plugins_info["plugins"] if p["name"] == "mlops_models_view"]
            assert ours["fastapi_apps"][0]["url_prefix"] == "/mlops/models"
            assert ours["external_views"][0]["href"] == "/mlops/models/"

            browser.get(f"{stack.url}/api/v2/monitor/health")  # the origin, to set its cookie
            browser.add_cookie({"name": "_token", "value": token, "path": "/"})
            browser.get(view)
            assert browser.title.startswith("Models"), browser.page_source[:2000]

            sections = browser.find_elements(By.CSS_SELECTOR, "section.model")
            assert [s.get_attribute("data-model") for s in sections] == [MODEL]  # the lock is hidden
            row = browser.find_element(By.ID, f"version-{MODEL}-{champion}")
            assert row.find_element(By.CSS_SELECTOR, "td.aliases").text == "@champion"
            metrics = row.find_element(By.CSS_SELECTOR, "td.metrics").text
            assert "roc_auc: 0.9132" in metrics and "recall: 0.7051" in metrics
            assert row.find_element(By.CSS_SELECTOR, "td.gates .check").text == "gates: passed"
            assert row.find_element(By.CSS_SELECTOR, "td.gates .gates-source").text == "attested"
            assert row.find_element(By.CSS_SELECTOR, ".check.signature").text == "signature: verified"
            assert row.find_element(By.CSS_SELECTOR, ".check.scan").text == "scan: clean"
            unaliased = browser.find_element(By.ID, f"version-{MODEL}-{other}")
            assert (
                unaliased.find_element(By.CSS_SELECTOR, ".check.signature").text == "signature: not checked"
            )
            drift = browser.find_element(By.CSS_SELECTOR, f"#model-{MODEL} .drift-verdict").text
            assert drift == "no drift"

            link = row.find_element(By.CSS_SELECTOR, "a.mlbom")
            href = link.get_attribute("href")
            assert href == f"{stack.url}/mlops/models/{MODEL}/versions/{champion}/mlbom.cdx.json"
            # The page's Content-Security-Policy (default-src 'none') holds in a real browser: a
            # script on the page may not even call back to the view.
            blocked = browser.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "fetch(arguments[0]).then(r => done('fetched ' + r.status), e => done('blocked'));",
                href,
            )
            assert blocked == "blocked"
            # The link itself serves the ML-BOM to the signed-in user (the browser's own cookie).
            status_code, body = _get(href, cookie=token)
            assert status_code == 200
            bom = json.loads(body)
            assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
            assert bom["components"][0]["type"] == "machine-learning-model"

            # The on-demand check of the unaliased version, in the browser.
            unaliased.find_element(By.CSS_SELECTOR, "a.check-now").click()
            assert browser.find_element(By.CSS_SELECTOR, ".check.signature").text == "signature: verified"
            browser.back()

            browser.get(view)
            regions = {
                name: browser.find_element(By.CSS_SELECTOR, css).rect
                for name, css in {
                    "title": "h1",
                    "model": "section.model",
                    "drift": ".drift",
                    "table": "table",
                    "champion row": f"tr[data-version='{champion}']",
                }.items()
            }
            shot = tmp_path / "models_view.png"
            assert browser.save_screenshot(str(shot))
            _compare_screenshot(shot, regions)
