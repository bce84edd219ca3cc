"""The page in a real browser: headless Chromium (Debian's package, driven by Selenium through
Debian's chromedriver) uploads the bundled clip to a live `stgcn serve` app with the shipped model
and the test reads what the page rendered: the top-k table, a playing H.264 video, the timeline
image. The screenshot is kept in runs/test-artifacts/serve-page.png (and the pytest tmp dir).
Skips when chromium, chromedriver or selenium is missing; .ci/run installs them."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from web_support import app_for, live_server

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "runs" / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1200,1800")

pytestmark = [pytest.mark.slow, pytest.mark.video,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and "
                                 "chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)")]


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)  # no driver download: Debian's
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, script: str, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_page_uploads_the_clip_and_shows_the_result(browser, tmp_path):
    pytest.importorskip("mediapipe")
    from selenium.webdriver.common.by import By

    from stgcn.inference.demo import bundled_video
    from stgcn.models.pretrained import get_pretrained

    shipped = get_pretrained()
    with live_server(app_for(shipped.verified_path())) as url:
        browser.get(url + "/")
        _wait(browser, "return document.getElementById('model').textContent.includes('kinect-v1')", 30, "the model")
        browser.find_element(By.ID, "file").send_keys(str(bundled_video()))
        browser.find_element(By.ID, "submit").click()
        state = _wait(browser, "const s = document.body.dataset.state; return s === 'done' || s === 'error' ? s : null",
                      300, "the result")
        assert state == "done", browser.find_element(By.ID, "status").text
        # the table: one person, top-5 labels of the model
        labels = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#topk td.label")]
        assert len(labels) == 5 and set(labels) <= set(shipped.label_names)
        # the video: a source the browser decodes (H.264) and plays
        src = browser.execute_script("return document.getElementById('video').currentSrc")
        assert "/api/jobs/" in src and src.endswith("/overlay.mp4")
        _wait(browser, "const v = document.getElementById('video'); return v.readyState >= 2 && v.videoWidth > 0",
              60, "the video to decode")
        assert browser.execute_script("return [document.getElementById('video').videoWidth, "
                                      "document.getElementById('video').videoHeight]") == [340, 256]
        browser.execute_script("const v = document.getElementById('video'); v.muted = true; v.play();")
        _wait(browser, "return document.getElementById('video').currentTime > 0.2", 60, "the video to play")
        # the timeline image loaded
        _wait(browser, "const i = document.getElementById('timeline'); return i.complete && i.naturalWidth > 0",
              30, "the timeline image")
        assert "ta_chi.mp4: 300 frames, 1 person" in browser.find_element(By.ID, "status").text
        shot = tmp_path / "serve-page.png"
        browser.execute_script("document.getElementById('video').pause()")
        assert browser.save_screenshot(str(shot))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "serve-page.png")
    assert shot.read_bytes()[:4] == b"\x89PNG"
