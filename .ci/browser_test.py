#!/usr/bin/env python3
"""The dashboard in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven by
selenium, against a `taskyard dev` of its own (its own data folder and ports).

It signs in with the admin token, submits a 3-node task through the API and watches the task page's
participant matrix go from waiting/running to completed without the page being reloaded, sees a failed
participant's error on that participant's row, and cancels a running task with the page's button.
With --screenshots DIR it saves the overview and a task page there (the README's pictures).

Usage: python3 .ci/browser_test.py [--taskyard PATH] [--screenshots docs]
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

PORT, PG_PORT, AGENT_PORT = 18190, 5497, 17201
BASE = f"http://127.0.0.1:{PORT}"


def api(method, path, token, body=None):
    request = urllib.request.Request(BASE + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def start_dev(taskyard, work):
    log = open(os.path.join(work, "dev.log"), "w")
    dev = subprocess.Popen([taskyard, "dev", "--data-dir", os.path.join(work, "data"), "--reset", "--port", str(PG_PORT),
                            "--listen", f"127.0.0.1:{PORT}", "--agent-port", str(AGENT_PORT), "--log-level", "warning"],
                           stdout=log, stderr=subprocess.STDOUT)
    token_file = os.path.join(work, "data", "admin-token")
    deadline = time.time() + 120
    while time.time() < deadline:
        if dev.poll() is not None:
            sys.exit(f"taskyard dev exited: {open(log.name).read()}")
        try:
            urllib.request.urlopen(BASE + "/readyz", timeout=2)
            if os.path.exists(token_file) and os.path.getsize(token_file) > 0:
                token = open(token_file).read().strip()
                if len(api("GET", "/api/v1/clusters/dev/nodes", token)["nodes"]) == 3:
                    return dev, token
        except Exception:
            pass
        time.sleep(0.5)
    dev.kill()
    sys.exit(f"taskyard dev did not get ready: {open(log.name).read()}")


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860", "--disable-gpu"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


def matrix(driver):
    """{node: [state, result / error]} of the task page's participant matrix, read in one go (the page
    redraws itself as the task changes)."""
    return driver.execute_script("""
        return Object.fromEntries([...document.querySelectorAll('#matrix tr[data-node]')].map(
            (row) => [row.dataset.node, [row.cells[1].innerText.trim(), row.cells[5].innerText.trim()]]));""")


def click(driver, element_id):
    """A real click on the element, found again if the page redrew it in between."""
    for _ in range(20):
        try:
            driver.find_element(By.ID, element_id).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError(f"#{element_id} kept being redrawn")


def text(driver, element_id):
    return driver.execute_script(f"return document.getElementById('{element_id}')?.innerText.trim() ?? null")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--taskyard", default=None)
    parser.add_argument("--screenshots", default=None)
    arguments = parser.parse_args()
    taskyard = arguments.taskyard or os.path.join(
        subprocess.run(["swift", "build", "--show-bin-path"], capture_output=True, text=True, check=True).stdout.strip(), "taskyard")
    work = tempfile.mkdtemp()
    os.chmod(work, 0o755)  # initdb runs as the postgres user when this runs as root
    dev, token = start_dev(taskyard, work)
    try:
        driver = browser()
    except Exception:
        # No browser or driver: the dev server it was to drive does not outlive the failure.
        dev.kill()
        dev.wait()
        shutil.rmtree(work, ignore_errors=True)
        raise
    checks = 0
    try:
        wait = WebDriverWait(driver, 30, poll_frequency=0.1)
        driver.get(BASE + "/ui")
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "use-token").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#nodes tr[data-node]")) == 3)
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#nodes tr[data-node]')].every((row) => row.innerText.includes('online'))"))
        loaded_at = driver.execute_script("return window.taskyardLoadedAt")
        checks += 1

        # A 3-node task, watched on its page until it completes: the matrix changes without a reload.
        task = api("POST", "/api/v1/clusters/dev/tasks", token,
                   {"type": "sleep", "participating_nodes": ["n1", "n2", "n3"], "payload": {"seconds": 2}})
        driver.execute_script(f"location.hash = '#/c/dev/tasks/{task['id']}'")
        wait.until(lambda d: set(matrix(d)) == {"n1", "n2", "n3"})
        first = matrix(driver)
        assert all(state in ("waiting", "running") for state, _ in first.values()), f"before it ends: {first}"
        wait.until(lambda d: all(state == "completed" for state, _ in matrix(d).values()))
        assert text(driver, "task-state") == "completed"
        assert driver.execute_script("return window.taskyardLoadedAt") == loaded_at, "the page was reloaded"
        checks += 1

        # A quorum task: the page names the policy, and one outcome decided it.
        quorum = api("POST", "/api/v1/clusters/dev/tasks", token,
                     {"type": "echo", "participating_nodes": ["n1", "n2", "n3"], "payload": {"q": 1}, "complete_when": "quorum"})
        driver.execute_script(f"location.hash = '#/c/dev/tasks/{quorum['id']}'")
        wait.until(lambda d: text(d, "task-state") == "completed")
        wait.until(lambda d: text(d, "policy") == "· complete when quorum")
        wait.until(lambda d: d.execute_script("return document.getElementById('matrix').innerText.split('decided').length - 1") == 1)
        checks += 1

        # A failed participant: its error on its own row (n3 has 50 GB free in the example handler).
        failing = api("POST", "/api/v1/clusters/dev/tasks", token,
                      {"type": "volume_create", "participating_nodes": ["n1", "n2", "n3"],
                       "payload": {"name": "browser-vol", "size_gb": 100}, "max_attempts": 1})
        driver.execute_script(f"location.hash = '#/c/dev/tasks/{failing['id']}'")
        wait.until(lambda d: matrix(d).get("n3", ["", ""])[0] == "failed")
        rows = matrix(driver)
        assert "not enough space" in rows["n3"][1], rows
        assert rows["n1"][0] == "completed" and rows["n2"][0] == "completed", rows
        assert text(driver, "task-state") == "failed"
        checks += 1
        if arguments.screenshots:
            os.makedirs(arguments.screenshots, exist_ok=True)
            driver.save_screenshot(os.path.join(arguments.screenshots, "dashboard-task.png"))

        # Cancel from the page.
        long = api("POST", "/api/v1/clusters/dev/tasks", token,
                   {"type": "sleep", "participating_nodes": ["n1", "n2"], "payload": {"seconds": 60}})
        driver.execute_script(f"location.hash = '#/c/dev/tasks/{long['id']}'")
        wait.until(lambda d: matrix(d) and all(state == "running" for state, _ in matrix(d).values()) and text(d, "cancel"))
        click(driver, "cancel")
        wait.until(lambda d: text(d, "task-state") == "cancelled")
        assert api("GET", f"/api/v1/clusters/dev/tasks/{long['id']}", token)["state"] == "cancelled"
        assert driver.execute_script("return window.taskyardLoadedAt") == loaded_at, "the page was reloaded"
        checks += 1

        # Gang admission: with n3 at capacity 1 and its slot held, a task on n1 and n3 waits, and its page
        # says for which node; it runs once the holder is cancelled.
        n3 = next(node for node in api("GET", "/api/v1/clusters/dev/nodes", token)["nodes"] if node["id"] == "n3")
        api("PUT", "/api/v1/clusters/dev/nodes/n3", token, {"endpoint": n3["endpoint"], "labels": n3["labels"], "capacity": 1})
        holder = api("POST", "/api/v1/clusters/dev/tasks", token,
                     {"type": "sleep", "participating_nodes": ["n3"], "payload": {"seconds": 60}})
        deadline = time.time() + 30
        while api("GET", f"/api/v1/clusters/dev/tasks/{holder['id']}", token)["state"] != "received":
            assert time.time() < deadline, "the holder never started"
            time.sleep(0.1)
        gang = api("POST", "/api/v1/clusters/dev/tasks", token,
                   {"type": "echo", "participating_nodes": ["n1", "n3"], "payload": {"g": 1}})
        driver.execute_script(f"location.hash = '#/c/dev/tasks/{gang['id']}'")
        wait.until(lambda d: "waiting for n3" in (text(d, "waiting-for") or ""))
        assert text(driver, "task-state") == "queued"
        api("POST", f"/api/v1/clusters/dev/tasks/{holder['id']}/cancel", token, {})
        wait.until(lambda d: text(d, "task-state") == "completed")
        assert not driver.find_elements(By.ID, "waiting-for"), "a running task waits on nothing"
        checks += 1

        # A schedule every 2 s: its page shows the task it submitted, and pauses it from the page.
        api("POST", "/api/v1/clusters/dev/schedules", token,
            {"id": "browser-probe", "cron": "@every 2s", "task": {"type": "echo", "participating_nodes": ["n1"], "payload": {"p": 1}}})
        driver.execute_script("location.hash = '#/c/dev/schedules'")
        row = "#schedules tr[data-schedule='browser-probe']"
        wait.until(lambda d: d.execute_script(f"return document.querySelector(\"{row} .last-task a\") !== null"))
        # The page re-renders on every change: read and click in one script, never by a stale element.
        driver.execute_script(f"document.querySelector(\"{row} button.pause\").click()")
        wait.until(lambda d: d.execute_script(f"return (document.querySelector(\"{row}\")?.innerText || '').includes('(paused)')"))
        assert api("GET", "/api/v1/clusters/dev/schedules/browser-probe", token)["paused"] is True
        assert driver.execute_script("return window.taskyardLoadedAt") == loaded_at, "the page was reloaded"
        checks += 1

        # The overview's charts: a burst of 300 tasks shows up in the finished chart (the page re-reads on
        # the change stream, never reloading); the window can be changed; a type's page has its own charts.
        api("POST", "/api/v1/clusters/dev/schedules/browser-probe/pause", token, {})
        driver.execute_script("location.hash = '#/c/dev'")
        finished = "return Number(document.querySelector('#chart-finished svg')?.getAttribute('data-completed') ?? -1)"
        wait.until(lambda d: d.execute_script(finished) >= 0)
        before = driver.execute_script(finished)
        api("POST", "/api/v1/clusters/dev/tasks/batch", token,
            {"tasks": [{"type": "echo", "participating_nodes": [f"n{1 + i % 3}"], "payload": {"burst": i}} for i in range(300)]})
        wait.until(lambda d: d.execute_script(finished) >= before + 300)
        assert driver.execute_script("return document.querySelectorAll('#chart-finished rect').length") >= 1
        assert driver.execute_script("return document.querySelectorAll('#chart-run polyline, #chart-run circle').length") >= 1
        assert driver.execute_script("return window.taskyardLoadedAt") == loaded_at, "the page was reloaded"
        if arguments.screenshots:
            time.sleep(2.5)
            driver.save_screenshot(os.path.join(arguments.screenshots, "dashboard-overview.png"))
        driver.execute_script("[...document.querySelectorAll('.windows button')].find((b) => b.innerText === '24 hours').click()")
        wait.until(lambda d: d.execute_script("return document.querySelector('section.charts')?.dataset.window") == "24h")
        wait.until(lambda d: d.execute_script(finished) >= before + 300)
        driver.execute_script("[...document.querySelectorAll('.windows button')].find((b) => b.innerText === 'last hour').click()")
        driver.execute_script("location.hash = '#/c/dev/types/echo'")
        wait.until(lambda d: d.execute_script("return document.querySelector('h1')?.innerText") == "Type echo")
        wait.until(lambda d: d.execute_script(finished) >= 300)
        if arguments.screenshots:
            driver.save_screenshot(os.path.join(arguments.screenshots, "dashboard-type.png"))
        checks += 1
        print(f"browser test: {checks} passed, 0 failed")
    except Exception:
        print(f"browser test: {checks} passed, 1 failed")
        print("page:", driver.page_source[:3000], file=sys.stderr)
        print("dev log:", open(os.path.join(work, "dev.log")).read()[-3000:], file=sys.stderr)
        raise
    finally:
        driver.quit()
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            dev.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
