#!/usr/bin/env python3
"""The dashboard in a real browser: headless Chromium driven by Selenium.

Starts a cluster, logs in with the token, opens the actors page while `lumen pi` runs, checks
that the supervisor and worker actors appear ALIVE and then DEAD after the job ends, opens a
worker's log from its row and finds the line the job printed there. Saves screenshots of each
page under --screenshots.

  browser_test.py --bin-dir build/bin --screenshots build/screenshots --venv build/test-venv

Exits 77 (skipped) if Selenium or Chromium is missing: scripts/setup-browser-test.sh installs
them.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--venv", default="")
    parser.add_argument("--samples", type=int, default=10_000_000_000)
    return parser.parse_args()


def ensure_selenium(args):
    """Re-runs this script with the venv's Python if Selenium is not importable here."""
    try:
        import selenium  # noqa: F401
        return True
    except ImportError:
        pass
    venv_python = os.path.join(args.venv, "bin", "python") if args.venv else ""
    in_venv = args.venv and os.path.realpath(sys.prefix) == os.path.realpath(args.venv)
    if venv_python and os.path.exists(venv_python) and not in_venv:
        os.execv(venv_python, [venv_python] + sys.argv)
    return False


def wait_until(what, predicate, timeout, interval=0.25):
    """Polls predicate() until it returns a true value; raises naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # the page may be between renders
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                         + (f" (last error: {last_error})" if last_error else ""))


class Cluster:
    def __init__(self, bin_dir):
        self.lumen = os.path.join(bin_dir, "lumen")
        self.temp_dir = tempfile.mkdtemp(prefix="lumen-browser-")
        result = subprocess.run(
            [self.lumen, "start", "--head", "--port=0", "--dashboard-port=0", "--num-cpus=2",
             "--object-store-memory=268435456", f"--temp-dir={self.temp_dir}"],
            capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"lumen start failed: {result.stdout}{result.stderr}")
        session = os.path.join(self.temp_dir, "session_latest")
        with open(os.path.join(session, "dashboard_url")) as f:
            self.url = f.read().strip()
        with open(os.path.join(session, "token")) as f:
            self.token = f.read().strip()

    def stop(self):
        subprocess.run([self.lumen, "stop", f"--temp-dir={self.temp_dir}"], capture_output=True,
                       timeout=120)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def actor_rows(driver):
    """(class, state) of every row of the actors table, read in one script call (the table is
    redrawn every 2 s)."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#actors-table tbody tr'))"
        ".map(tr => [tr.cells[1].innerText, tr.cells[3].innerText]);")
    return [tuple(row) for row in rows or []]


def main():
    args = parse_args()
    if not ensure_selenium(args):
        print("skipped: Selenium is not installed (run scripts/setup-browser-test.sh)")
        return SKIP
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        print("skipped: chromium or chromium-driver is missing (run scripts/setup-browser-test.sh)")
        return SKIP
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    os.makedirs(args.screenshots, exist_ok=True)
    cluster = Cluster(args.bin_dir)
    driver = None
    pi = None
    try:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1500,950", "--no-first-run", "--disable-extensions"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(60)

        def shot(name):
            path = os.path.join(args.screenshots, f"{name}.png")
            driver.save_screenshot(path)
            print(f"screenshot: {path}")

        # Without the token, the dashboard sends the browser to the login page.
        driver.get(cluster.url + "/")
        wait_until("the login page", lambda: driver.current_url.endswith("/login"), 30)
        wait_until("the token field", lambda: driver.find_element(By.ID, "token"), 30)
        shot("01-login")
        driver.find_element(By.ID, "token").send_keys("not-the-token")
        driver.find_element(By.ID, "login").click()
        wait_until("the wrong-token message",
                   lambda: driver.find_element(By.ID, "login-error").is_displayed(), 30)
        token_field = driver.find_element(By.ID, "token")
        token_field.clear()
        token_field.send_keys(cluster.token)
        driver.find_element(By.ID, "login").click()
        wait_until("the overview", lambda: "#/overview" in driver.current_url and
                   driver.find_elements(By.CSS_SELECTOR, ".card"), 30)
        cookies = driver.get_cookies()
        session = [c for c in cookies if c["name"] == "lumen_session"]
        assert session and session[0]["httpOnly"] and session[0].get("sameSite") == "Strict", \
            f"session cookie: {cookies}"

        # The pi job on the cluster; its actors appear ALIVE.
        pi = subprocess.Popen(
            [cluster.lumen, "pi", f"--samples={args.samples}", "--workers=2",
             f"--temp-dir={cluster.temp_dir}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        driver.get(cluster.url + "/#/actors")

        def alive():
            rows = actor_rows(driver)
            return (rows.count(("PiSupervisor", "ALIVE")) == 1
                    and rows.count(("PiWorker", "ALIVE")) == 2)

        wait_until("the supervisor and two worker actors ALIVE", alive, 120)
        shot("02-actors-alive")
        driver.get(cluster.url + "/#/overview")
        wait_until("the overview's charts with samples", lambda: driver.find_elements(
            By.CSS_SELECTOR, ".chart path.line") and not driver.find_elements(
                By.CSS_SELECTOR, ".chart-empty"), 30)
        shot("03-overview-while-pi-runs")
        driver.get(cluster.url + "/#/actors")
        wait_until("the actors table", lambda: actor_rows(driver), 30)

        output, _ = pi.communicate(timeout=600)
        assert pi.returncode == 0, f"lumen pi failed: {output}"
        assert "pi is about 3.14" in output, output
        print(output.strip())

        def dead():
            rows = actor_rows(driver)
            return (rows.count(("PiSupervisor", "DEAD")) == 1
                    and rows.count(("PiWorker", "DEAD")) == 2)

        wait_until("the three actors DEAD after the job", dead, 60)
        shot("04-actors-dead")

        # One click from a worker actor's row to its log, which has the line the job printed.
        def click_worker_log():
            for tr in driver.find_elements(By.CSS_SELECTOR, "#actors-table tbody tr"):
                if tr.find_elements(By.TAG_NAME, "td")[1].text == "PiWorker":
                    tr.find_element(By.CSS_SELECTOR, "a.log-link").click()
                    return True
            return False

        wait_until("a click on a PiWorker row's log link", click_worker_log, 30)
        wait_until("the worker's log with its start line", lambda: "starting" in
                   driver.find_element(By.ID, "log-text").text and "pi worker " in
                   driver.find_element(By.ID, "log-text").text, 30)
        shot("05-worker-log")

        # The pi workers' Report calls are the newest thousands; the RunBatch calls are found by
        # function.
        driver.get(cluster.url + "/#/tasks?function=PiWorker::RunBatch")
        # Read in one script call: the table is redrawn every 2 s under Selenium's feet.
        wait_until("the tasks table with the pi calls", lambda: "PiWorker::RunBatch" in
                   driver.execute_script("return document.getElementById('tasks-table').innerText"),
                   30)
        shot("06-tasks")
        driver.get(cluster.url + "/#/nodes")
        wait_until("the nodes table", lambda: driver.find_elements(
            By.CSS_SELECTOR, "#nodes-table tbody tr"), 30)
        shot("07-nodes")
        driver.get(cluster.url + "/#/objects")
        wait_until("the objects table", lambda: driver.find_elements(By.ID, "objects-table"), 30)
        shot("08-objects")
        print("browser test passed")
        return 0
    finally:
        if pi is not None and pi.poll() is None:
            pi.kill()
            pi.wait()
        if driver is not None:
            driver.quit()
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
