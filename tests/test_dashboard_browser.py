"""optuna-dashboard in a real browser, on a study written by `hypernas search`.

A tiny search (the `tiny_cnn` space, a hypernetwork trained for 4 steps, 10 trials, one
finalist trained for one epoch) writes `study.db` and the finalist's drawing artifact.
optuna-dashboard serves them from a thread on a free loopback port, the way
`optuna-dashboard sqlite:///... --artifact-dir ...` (README) does, and headless Chromium,
driven by Playwright, checks what a user sees: the study, its trials with their `arch` and
`hash` attributes, and the finalist's drawing loaded as an image. Screenshots go to
`$HYPERNAS_ARTIFACTS` (else the test's tmp dir), and one more is taken if a check fails.

Needs Debian's `chromium` at /usr/bin/chromium and the `playwright` Python package (its
bundled driver only; no `playwright install`). Without them the test skips, unless
HYPERNAS_REQUIRE_BROWSER=1 (set in CI), which turns the skip into a failure.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socketserver
import struct
import threading
import time
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import pytest
from conftest import fit_config

from hypernas.final_table import COLUMNS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WAIT_MS = 20_000  # every browser wait; the whole test takes ~15-40 s
STUDY = "browser"
TRIALS = 10


def _require_browser() -> None:
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install playwright; no browser download needed)")
    if missing:
        reason = "the dashboard browser test needs " + " and ".join(missing)
        if os.environ.get("HYPERNAS_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + "; HYPERNAS_REQUIRE_BROWSER=1 forbids skipping it", pytrace=False)
        pytest.skip(reason)


def _tiny_search(runs: Path):
    """A real `hypernas search` run, small: about 10 s of CPU on 2 cores."""
    from hypernas.search import SearchConfig, run_search

    fit = fit_config(steps=4, meta_batch=2, batch_size=16, hidden=16, rounds=2, rank=4, warmup=2,
                    eval_every=2, eval_archs=2, checkpoint_every=4)
    cfg = SearchConfig(space="nb201", space_options={"channels": 2, "cells": 1}, study=STUDY, runs=str(runs),
                       trials=TRIALS, trial_batch=TRIALS, samples=1, fit=fit, top_k=2, final_epochs=1)
    result = run_search(cfg, progress=False)
    return cfg, result


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # one line per request would bury the test's output
        pass


@contextlib.contextmanager
def _dashboard(storage_url: str, artifact_dir: str):
    """optuna-dashboard on 127.0.0.1 (a free port) in a thread; yields its base URL, stops it after."""
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    app = optuna_dashboard.wsgi(storage_url, artifact_store=FileSystemArtifactStore(artifact_dir))
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="optuna-dashboard",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the dashboard server thread did not stop"


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.filterwarnings("ignore:Some regimes for parameter:UserWarning")  # dashboard's importance, 10 trials
def test_dashboard_shows_the_study_its_trials_and_the_finalists_drawing(tmp_path):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    start = time.perf_counter()
    cfg, result = _tiny_search(tmp_path / "runs")
    searched = time.perf_counter() - start
    study = optuna.load_study(study_name=STUDY, storage=cfg.storage_url)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == TRIALS and len(result.final) == 2
    finalist = next(t for t in trials if t.number == result.final[0]["trial"])
    metas = optuna.artifacts.get_all_artifact_meta(finalist, storage=study._storage)
    assert len(metas) == 1 and metas[0].mimetype == "image/png", metas
    artifact_dir = os.path.join(cfg.run_dir, "artifacts")
    drawing = Path(artifact_dir, metas[0].artifact_id).read_bytes()
    width, height = _png_size(drawing)
    assert (width, height) == (768, 408), "the finalist's drawing is the NB201 cell, not the op-level graph"
    src = f"/artifacts/{study._study_id}/{finalist._trial_id}/{metas[0].artifact_id}"  # the dashboard's URL
    other = next(t for t in trials if t.number != finalist.number and "duplicate_of" not in t.user_attrs)

    out = Path(os.environ.get("HYPERNAS_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    shots = {name: out / f"dashboard_{name}.png" for name in ("study", "note", "trial", "trial_viewport", "failure")}
    with _dashboard(cfg.storage_url, artifact_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=WAIT_MS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})  # tall enough for the artifact card
        page.set_default_timeout(WAIT_MS)
        page.set_default_navigation_timeout(WAIT_MS)
        page_errors: list[str] = []
        page.on("pageerror", lambda err: page_errors.append(str(err)))
        try:
            # The study page: its name, the best trial, the study's attributes.
            page.goto(f"{base}/dashboard/studies/{study._study_id}", wait_until="networkidle")
            expect(page.get_by_text(f"{STUDY} (id={study._study_id})")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text(f"Best Trial (number={study.best_trial.number})")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text("Study User Attributes")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_role("cell", name="nb201", exact=True)).to_be_visible(timeout=WAIT_MS)
            page.screenshot(path=str(shots["study"]), full_page=True)

            # The study's note, the final table: each finalist's whole NB201 string in the architecture column,
            # its numbers in theirs (a `|` in the string would otherwise split the row into cells).
            page.goto(f"{base}/dashboard/studies/{study._study_id}/note", wait_until="networkidle")
            note = page.locator("table").filter(has_text="true accuracy")
            expect(note).to_be_visible(timeout=WAIT_MS)
            header = [c.strip() for c in note.locator("th").all_inner_texts()]
            assert header == list(COLUMNS)
            rows = note.locator("tbody tr")
            expect(rows).to_have_count(len(result.final), timeout=WAIT_MS)
            for k, row in enumerate(result.final):
                cells = [c.strip() for c in rows.nth(k).locator("td").all_inner_texts()]
                assert cells[-1] == row["arch"] and cells[0] == str(row["trial"]), cells
                assert cells[1:3] == [str(row["round"]), row["reason"]], cells
                assert cells[3] == f"{row['score']:.4f} ± {row['score_std']:.4f}", cells
                assert cells[4] == f"{row['trained_accuracy']:.4f} [{row['low']:.4f}, {row['high']:.4f}]", cells
                assert cells[5] == str(row["runs"]), cells
            expect(page.get_by_text(f"over these {len(result.final)}")).to_be_visible(timeout=WAIT_MS)
            tau = page.locator("p", has_text="Kendall tau between")  # a paragraph of its own, as each verdict line
            expect(tau).to_have_count(1, timeout=WAIT_MS)
            expect(tau).not_to_contain_text("95% intervals")
            page.screenshot(path=str(shots["note"]))

            # The trial list, opened at the finalist: every trial listed, its attributes, its drawing.
            page.goto(f"{base}/dashboard/studies/{study._study_id}/trials?numbers={finalist.number}",
                      wait_until="networkidle")
            expect(page.get_by_text(f"Trial {finalist.number} (trial_id={finalist._trial_id})")).to_be_visible(
                timeout=WAIT_MS)
            expect(page.get_by_text(f"{TRIALS} Trials", exact=True)).to_be_visible(timeout=WAIT_MS)
            for t in trials:
                expect(page.get_by_text(f"Trial {t.number}", exact=True)).to_be_visible(timeout=WAIT_MS)
            for key in ("arch", "hash", "params"):
                expect(page.get_by_text(f"{key} {finalist.user_attrs[key]}", exact=True)).to_be_attached(
                    timeout=WAIT_MS)
            expect(page.get_by_text(f"trained_accuracy {finalist.user_attrs['trained_accuracy']}", exact=True)
                   ).to_be_attached(timeout=WAIT_MS)
            # What was trained comes first: the trial's note, above the attributes, with the drawing at full size.
            trained = page.get_by_text(f"Trained: test accuracy {finalist.user_attrs['trained_accuracy']:.4f}")
            expect(trained).to_be_visible(timeout=WAIT_MS)
            attributes = page.get_by_text("User Attributes", exact=True)
            assert trained.bounding_box()["y"] < attributes.bounding_box()["y"]
            image = page.locator(f'img[src="{src}"]').first  # in the note, and as the artifact's thumbnail
            expect(image).to_be_visible(timeout=WAIT_MS)
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(),
                                   timeout=WAIT_MS)
            assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [width, height]
            assert image.bounding_box()["width"] >= 600  # shown near its size, not as a 200-pixel thumbnail
            assert image.bounding_box()["y"] < attributes.bounding_box()["y"]
            page.screenshot(path=str(shots["trial"]), full_page=True)
            page.screenshot(path=str(shots["trial_viewport"]))  # readable: the long `arch` makes the full page wide

            # Another trial, chosen in the list, shows its own architecture.
            page.get_by_text(f"Trial {other.number}", exact=True).click()
            expect(page.get_by_text(f"Trial {other.number} (trial_id={other._trial_id})")).to_be_visible(
                timeout=WAIT_MS)
            expect(page.get_by_text(f"hash {other.user_attrs['hash']}", exact=True)).to_be_attached(timeout=WAIT_MS)
            expect(page.locator(f'img[src="{src}"]')).to_have_count(0, timeout=WAIT_MS)  # not a finalist
            assert not page_errors, f"JavaScript errors in the dashboard: {page_errors}"
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(shots["failure"]), full_page=True)
                print(f"screenshot of the failure: {shots['failure']}")
            raise
        finally:
            browser.close()

        # The artifact URL itself serves the stored PNG, byte for byte.
        with urllib.request.urlopen(base + src, timeout=10) as response:
            assert response.headers["Content-Type"] == "image/png"
            assert response.read() == drawing

    for name in ("study", "note", "trial", "trial_viewport"):
        assert _png_size(shots[name].read_bytes())[0] >= 1400
        print(f"screenshot of the {name.replace('_', ' ')} page: {shots[name]}")
    print(f"search {searched:.1f} s, dashboard checks {time.perf_counter() - start - searched:.1f} s")
