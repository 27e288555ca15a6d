"""The search playground page: served by the app, and driven in a real headless Chromium against a live server.

The browser test uses Debian's ``chromium`` and ``chromium-driver`` through Selenium pointed at that driver,
so nothing is downloaded. Without them it skips, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from router_retriever import Document, Retriever, load_settings
from router_retriever.service.app import ServiceConfig, create_app
from router_retriever.service.playground import add_playground_routes

from conftest import skip_unless_available
from service_server import serve_in_thread

KEY = "playground-key"
AUTH = ServiceConfig(api_keys=(KEY,))
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 60


@pytest.fixture(scope="module")
def url(built_config: Path) -> Iterator[str]:
    """A server over the session's built slice whose top_k limit is 20 (the schema says so too)."""
    retriever = Retriever(load_settings(built_config, env={"RETRIEVER_MAX_TOP_K": "20"}), read_only=True)
    with serve_in_thread(create_app(retriever, AUTH)) as base_url:
        yield base_url
    retriever.close()


# ---- the page is served ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/ui"])
def test_page_is_served_without_a_key_with_a_strict_policy(url: str, path: str) -> None:
    page = httpx.get(f"{url}{path}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="ui/playground.js"' in page.text and 'href="ui/playground.css"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere: works offline
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy


@pytest.mark.parametrize("asset, media_type", [("playground.js", "text/javascript"), ("playground.css", "text/css")])
def test_assets_are_served_and_the_page_stays_out_of_the_schema(url: str, asset: str, media_type: str) -> None:
    response = httpx.get(f"{url}/ui/{asset}")
    assert response.status_code == 200 and response.headers["content-type"].startswith(media_type)
    assert "innerHTML" not in response.text and "console." not in response.text
    schema = httpx.get(f"{url}/openapi.json").json()
    assert not {"/", "/ui"} & set(schema["paths"])
    assert httpx.get(f"{url}/ui/../service/app.py").status_code == 404


# ---- the page in a real browser ------------------------------------------------------------------
@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        skip_unless_available(f"no Chromium: {', '.join(missing)} missing (apt-get install chromium chromium-driver; "
                              ".ci/run installs them)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_unless_available("selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1600", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def test_search_in_the_browser_shows_the_route_and_provenance(browser: Any, url: str, tmp_path: Path,
                                                              corpus_slice: list[Document]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, WAIT_S)
    shot = tmp_path / "playground.png"
    browser.get(f"{url}/")

    # the service needs a key: the page asks for it, and then lists the experts and their indexes
    key = wait.until(ec.visibility_of_element_located((By.ID, "api-key")))
    assert "missing API key" in browser.find_element(By.ID, "error").text
    key.send_keys(KEY, Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#experts tbody tr")) == 2)
    rows = browser.find_elements(By.CSS_SELECTOR, "#experts tbody tr")
    assert [r.get_attribute("data-expert") for r in rows] == ["general", "sre"]
    assert all(int(r.find_elements(By.CSS_SELECTOR, "td")[5].text) == len(corpus_slice) for r in rows)
    assert browser.find_element(By.ID, "top-k").get_attribute("max") == "20"  # the service's limit, from /openapi.json
    assert [o.text for o in Select(browser.find_element(By.ID, "expert")).options] == \
        ["route automatically", "general", "sre"]

    # a search: route bars with the chosen expert highlighted, hits with highlighted terms and provenance
    doc = corpus_slice[7]
    query = browser.find_element(By.ID, "query")
    query.send_keys(doc.title, Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#hits li.hit"))
    bars = browser.find_elements(By.CSS_SELECTOR, "#route-bars .bar-row")
    assert sorted(b.get_attribute("data-expert") for b in bars) == ["general", "sre"]
    assert all(b.get_attribute("data-score") for b in bars)
    chosen = browser.find_elements(By.CSS_SELECTOR, "#route-bars .bar-row.chosen")
    assert [b.get_attribute("data-expert") for b in chosen] == ["general"]
    assert browser.find_element(By.CSS_SELECTOR, ".bar-row.chosen .bar-fill").size["width"] > 0
    assert "1st choice" in browser.find_element(By.ID, "route-bars").text
    hits = browser.find_elements(By.CSS_SELECTOR, "#hits li.hit")
    assert len(hits) == 10 and hits[0].get_attribute("data-id") == doc.id
    provenance = hits[0].find_element(By.CSS_SELECTOR, ".prov")
    assert provenance.get_attribute("data-retriever") == "general" and provenance.get_attribute("data-rank") == "1"
    assert hits[0].find_elements(By.CSS_SELECTOR, ".hit-title mark")  # the query terms are highlighted
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the page follows the service's limit (read from its schema) and says so readably
    top_k = browser.find_element(By.ID, "top-k")
    top_k.clear()
    top_k.send_keys("30", Keys.ENTER)
    error = wait.until(ec.visibility_of_element_located((By.ID, "error")))
    assert "must be between 1 and 20 (got 30)" in error.text

    # the key stays in the page: not in the URL, not in the console; no script or policy errors
    assert KEY not in browser.current_url
    logs = browser.get_log("browser")
    assert not [e for e in logs if KEY in e["message"]]
    # (the 401 and 422 answers above are logged as network errors)
    assert not [e for e in logs if e["level"] == "SEVERE" and e["source"] != "network"], logs


# ---- fields the API may gain: search modes, pilot domains, index kinds, per-hit provenance ---------
HOSTILE = '<img src=x onerror="document.title=\'pwned\'">'


def newer_api() -> tuple[FastAPI, list[dict]]:
    """A stand-in for a newer service: the playground's routes over canned answers with the new fields."""
    app, requests = FastAPI(), []
    add_playground_routes(app)

    @app.get("/experts")
    def experts() -> dict:
        expert = {"description": "", "query_encoder": "q", "document_encoder": "d", "dimension": 8, "index_documents": 3}
        return {"experts": [{**expert, "name": "general", "domains": ["science"], "index_kind": "hnsw"},
                            {**expert, "name": "sre", "domains": ["sre", "databases"], "index_kind": "flat"}],
                "default_route_top_m": 1, "routed": True, "modes": ["dense", "sparse", "hybrid"], "default_mode": "hybrid"}

    @app.get("/ready")
    def ready() -> dict:
        return {"ready": True, "detail": "ok", "documents": 3, "indexes": {}}

    @app.post("/search")
    def search(body: dict[str, Any]) -> dict:
        requests.append(body)
        hit = {"id": "d1", "score": 0.5, "title": HOSTILE, "text": f"buffer pool {HOSTILE}", "metadata": {"k": HOSTILE},
               "expert": "sre", "provenance": [{"retriever": "sre", "rank": 2}, {"retriever": "bm25", "rank": 1}]}
        return {"query": body["query"], "hits": [hit],
                "route": {"expert": "sre", "experts": ["sre"], "scores": {"general": 0.1, "sre": 0.4}, "forced": False}}

    return app, requests


def test_the_page_uses_new_fields_when_present_and_escapes_every_string(browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    app, requests = newer_api()
    with serve_in_thread(app) as base_url:
        browser.get(f"{base_url}/ui")
        wait = WebDriverWait(browser, WAIT_S)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#experts tbody tr")) == 2)
        assert Select(browser.find_element(By.ID, "mode")).first_selected_option.text == "hybrid"
        table = browser.find_element(By.ID, "experts").text
        assert "hnsw" in table and "sre, databases" in table
        browser.find_element(By.ID, "query").send_keys("buffer pool", Keys.ENTER)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#hits li.hit"))
        assert requests == [{"query": "buffer pool", "top_k": 10, "route_top_m": 1, "mode": "hybrid"}]
        chips = browser.find_elements(By.CSS_SELECTOR, "#hits .prov")
        assert [c.text for c in chips] == ["sre · rank 2", "bm25 · rank 1"]
        assert "pilots: sre, databases" in browser.find_element(By.CSS_SELECTOR, ".bar-row.chosen").text
        assert browser.find_element(By.CSS_SELECTOR, ".hit-title").text == HOSTILE  # shown as text, not markup
        assert not browser.find_elements(By.CSS_SELECTOR, "#hits img") and browser.title != "pwned"
        assert [m.text for m in browser.find_elements(By.CSS_SELECTOR, ".hit-snippet mark")] == ["buffer", "pool"]
