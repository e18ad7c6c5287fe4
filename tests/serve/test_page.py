"""The live explain page in a real headless browser (Debian's chromium and chromedriver): type a text, watch
the four stages, and the answer equal the Python pipeline's."""

from __future__ import annotations

import json
import shutil

import pytest

import onnxpipe

from .test_process import server  # noqa: F401  (the real server process fixture)

CHROMEDRIVER = shutil.which("chromedriver")
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(
    not (CHROMEDRIVER and BROWSER),
    reason="needs chromium and chromedriver (apt-get install chromium chromium-driver; .ci/run installs them)",
)
def test_explain_page_walks_a_typed_text_through_the_stages(server, artifact, tmp_path):  # noqa: F811
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, url = server()
    pipe = onnxpipe.pipeline(model=artifact("bert", "single", quantize="int8"))
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 20)
        first = "We are very happy to show you the 🤗 Transformers library."
        wait.until(lambda d: d.find_elements(By.ID, "result"))
        assert json.loads(driver.find_element(By.ID, "result").text) == pipe(first)
        box = driver.find_element(By.ID, "text")
        box.clear()
        box.send_keys("the food was bad")
        wait.until(lambda d: json.loads(d.find_element(By.ID, "result").text) == pipe("the food was bad"))
        tokens = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#tokens .tok")]
        assert tokens == pipe.encode(["the food was bad"])[0].tokens
        assert json.loads(driver.find_element(By.ID, "ids").text) == pipe.encode(["the food was bad"])[0].ids
        for stage in ("load", "preprocess", "forward", "postprocess"):
            assert driver.find_element(By.ID, f"stage-{stage}").is_displayed()
        assert "logits" in driver.find_element(By.ID, "logits").text
        driver.save_screenshot(str(tmp_path / "explain.png"))
    finally:
        driver.quit()
