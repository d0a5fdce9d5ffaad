"""The web UI's main scenarios in Firefox (docs/web.md, "Browsers"):
Debian's /usr/bin/firefox-esr, headless, driven over WebDriver BiDi by
npm's puppeteer-core (web_ui_firefox.mjs, behind the Playwright calls of
web_ui_driver.mjs's scenarios) against a real vireod on HTTPS, with one
real guest: log in (a wrong password, then the session's cookie and CSRF
token), the wizard's create, start, the serial console over its
WebSocket, noVNC's screen, the graphs, a viewer's disabled actions and
the API's 403, the users and tokens pages, a second session's pause seen
live, a refused action's message, force stop and delete; before them,
the adapter's calls against Playwright's on a page of their own, and at
the end, the browser's processes ended with a killed driver.

The tests are test_web_ui.py's own (its assertions, the same scenario
code), collected here in its order with a module fixture that drives
Firefox; with VIREO_WEB_FIREFOX_ALL=1, every one of them but the first
load's (read through Chromium's DevTools protocol). The screenshots of
the main pages go to BUILD/web-ui/firefox-*.jpg."""

import os

import pytest

import test_web_ui
from test_web_ui import serve_web

MAIN = {"test_driver_calls_fail_as_playwrights",
        "test_login", "test_wizard_creates_the_vm", "test_start_shows_running_live",
        "test_console_tab_boot_marker_and_a_command", "test_screen_tab_shows_the_guest_and_takes_keys",
        "test_graphs_show_points", "test_viewer_cannot_stop", "test_admin_pages_users_and_tokens",
        "test_another_sessions_action_shows_live", "test_failed_action_shows_the_apis_message",
        "test_stop_from_the_page", "test_delete_with_confirmation",
        "test_browser_ends_with_its_processes_and_profile"}
CHROMIUM_ONLY = {"test_first_load_size_and_paint"}
ALL = os.environ.get("VIREO_WEB_FIREFOX_ALL") == "1"
# A test renamed in test_web_ui.py must not leave the Firefox run unseen.
UNKNOWN = (MAIN | CHROMIUM_ONLY) - set(vars(test_web_ui))
assert not UNKNOWN, f"not in test_web_ui.py: {sorted(UNKNOWN)}"

globals().update({name: test for name, test in vars(test_web_ui).items()
                  if name.startswith("test_") and (name in MAIN or ALL and name not in CHROMIUM_ONLY)})


@pytest.fixture(scope="module")
def web():
    yield from serve_web("firefox")
