"""Real-browser checks of the rendered book: headless Chromium, driven over the DevTools protocol.

Library-free (it needs Chromium, ``websocket-client`` and PyYAML, not :mod:`mifgsm_lib`), so that it checks any
built HTML folder. For every chapter of the table of contents it serves the HTML folder on 127.0.0.1, opens
``<html>/<file>.html`` at a 1280x900 viewport with every other host unreachable, waits until MathJax has typeset
the page and its images have loaded, saves a full-page screenshot to ``<html>/_screenshots/<chapter>.png`` and
lists what a reader would see wrong (:func:`check_page`; the checks are described in :data:`CHECKS`).

Used by ``tests/test_browser.py``; a developer runs the same checks on any build with::

    python tests/browser.py DIR/_build/html            # or: python scripts/screenshots.py DIR/_build/html
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

#: The viewport the pages are laid out in (CSS pixels, device scale factor 1).
VIEWPORT = (1280, 900)
#: Seconds one page may take, from opening it to its screenshot.
PAGE_TIMEOUT = 60.0
#: Of those, the most spent waiting for MathJax to load and typeset, and for the images to load.
MATHJAX_TIMEOUT = 25.0
IMAGES_TIMEOUT = 15.0
#: A box overflows when its content is wider than the box by more than this many CSS pixels (rounding).
OVERFLOW_SLACK = 1
#: Screenshots are cut at this height (CSS pixels), beyond which Chromium's captures fail.
MAX_SCREENSHOT_HEIGHT = 30000
#: Where the screenshots go, inside the HTML folder.
SCREENSHOTS = "_screenshots"
#: Chromium's executable: ``$MIFGSM_CHROMIUM``, else the first of these on the PATH.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

CHECKS = """\
Each page is served from 127.0.0.1 (no other host reachable) and opened in headless Chromium at 1280x900; the checks
wait for MathJax to typeset (at most 25 s) and the images to load (at most 15 s); a page has 60 s in all.
figures   every <img> of the article loaded (naturalWidth > 0); one <figure> with a loaded image per {glue:figure}
          directive of the executed notebook; at least one loaded image where the notebook has image outputs
errors    no "Traceback" in the page text, no error/traceback output, no stderr output containing "Error"; no
          uncaught JavaScript exception (but the duplicate THEBE_JS_URL of every Jupyter Book 1.x page), no dialog;
          no local file missing (HTTP >= 400 or failed); the page answers (a script in a busy loop is a failure)
raw text  no "{glue:" (or other unparsed MyST role) text outside code cell inputs; no unrendered TeX in the text
          outside code and typeset math: \\( \\) \\[ \\] $$ $...$ \\begin{...}
math      where the page has math: MathJax loaded and finished; no MathJax error element (merror, noErrors' box,
          noUndefined's red name, Math Processing Error) or error signal (parse error, undefined control sequence,
          file load error); no preview or math element left untypeset
code      every <pre> of the article (cell inputs, outputs, code blocks; hidden cells opened after the screenshot):
          scrollWidth <= clientWidth + 1 px
tables    every <table> at most as wide as the article's content column + 1 px; the page does not scroll sideways
          (document scrollWidth <= clientWidth + 1 px)
screenshot one full-page PNG per page, <html>/_screenshots/<chapter>.png (cut at 30000 px)"""


class BrowserError(RuntimeError):
    """Chromium could not be started or driven."""


# --------------------------------------------------------------------------------------------------
# The pages to check
# --------------------------------------------------------------------------------------------------


def toc_files(toc: Path) -> list[str]:
    """The pages of a jb-book ``_toc.yml``, in order (root first), as paths without suffix."""
    import yaml

    data = yaml.safe_load(toc.read_text())
    if not isinstance(data, dict) or "root" not in data:
        raise ValueError(f"{toc}: expected a jb-book table of contents with a 'root' entry")
    files = [data["root"]]

    def walk(entries: Iterable[dict]) -> None:
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    walk(data.get("chapters", []))
    for part in data.get("parts", []):
        walk(part.get("chapters", []))
    return [str(Path(f).with_suffix("")) if Path(f).suffix in (".ipynb", ".md") else f for f in files]


def default_toc(html: Path) -> Path:
    """The table of contents a build was made from: ``<out>/_build/executed/_toc.yml`` beside ``<out>/_build/html``,
    else the repository's."""
    staged = html.parent / "executed" / "_toc.yml"
    return staged if staged.is_file() else Path(__file__).resolve().parent.parent / "_toc.yml"


def chapter_name(file: str) -> str:
    """The chapter's name for its screenshot: ``book/attacks`` -> ``attacks``."""
    return Path(file).name


IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif", "image/webp")
REMOVED_TAGS = {"remove-cell", "remove_cell", "remove-output", "remove_output"}


def notebook_expectations(notebook: Path) -> dict[str, int]:
    """What the executed notebook promises the page shows: ``glue_figures`` (``{glue:figure}`` directives) and
    ``image_outputs`` (image outputs of cells whose outputs are not removed)."""
    nb = json.loads(notebook.read_text())
    glue_figures = image_outputs = 0
    for cell in nb.get("cells", []):
        tags = set(cell.get("metadata", {}).get("tags", []))
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") == "markdown" and not tags & {"remove-cell", "remove_cell"}:
            glue_figures += len(re.findall(r"\{glue:figure\}", source))
        if cell.get("cell_type") == "code" and not tags & REMOVED_TAGS:
            for output in cell.get("outputs", []):
                if any(mime in output.get("data", {}) for mime in IMAGE_MIMES):
                    image_outputs += 1
    return {"glue_figures": glue_figures, "image_outputs": image_outputs}


def find_notebook(html: Path, file: str) -> Path | None:
    """The executed notebook of a page: ``<out>/_build/executed/<file>.ipynb``, else the build's ``_sources`` copy."""
    for candidate in (html.parent / "executed" / f"{file}.ipynb", html / "_sources" / f"{file}.ipynb"):
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------------------------------
# Chromium and the DevTools protocol
# --------------------------------------------------------------------------------------------------


def find_chromium() -> str:
    """Chromium's executable (``$MIFGSM_CHROMIUM`` or the first of :data:`CHROMIUM_NAMES` on the PATH)."""
    wanted = os.environ.get("MIFGSM_CHROMIUM")
    if wanted:
        return wanted
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}; set MIFGSM_CHROMIUM); on Debian: "
                       "apt-get install chromium")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _die_with_parent() -> None:
    """In the child, before Chromium starts (Linux): be killed when the process that started it dies, however it
    dies (a CI job killed at its time limit leaves no Chromium behind)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Browser:
    """A headless Chromium (its own process group and a temporary profile) and one DevTools connection to it.

    Every host but 127.0.0.1 is unreachable (``--host-resolver-rules``). Use as a context manager: leaving it
    kills Chromium's whole process group and removes the profile.
    """

    def __init__(self, executable: str | None = None, start_timeout: float = 30.0) -> None:
        self.executable = executable or find_chromium()
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.profile: Path | None = None
        self.ws: Any = None
        self._next_id = 0
        self._events: list[dict] = []

    # ---- lifetime ----
    def __enter__(self) -> Browser:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        import websocket  # websocket-client

        self.profile = Path(tempfile.mkdtemp(prefix="mifgsm-chromium-"))
        width, height = VIEWPORT
        cmd = [
            self.executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={self.profile}", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
            "--disable-breakpad", "--disable-crash-reporter", "--mute-audio", "--force-device-scale-factor=1",
            f"--window-size={width},{height}", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "about:blank",
        ]
        log = open(self.profile / "chromium.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while True:
            lines = port_file.read_text().split("\n") if port_file.is_file() else []
            if len(lines) >= 2 and lines[1].strip():
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.profile / "chromium.log").read_text(errors="replace")[-2000:]
                state = f"exited with {self.process.returncode}" if self.process.poll() is not None else "timed out"
                raise BrowserError(f"Chromium ({' '.join(cmd[:2])} ...) {state} before DevTools was up:\n{tail}")
            time.sleep(0.05)
        url = f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
        self.ws = websocket.create_connection(url, timeout=self.start_timeout, suppress_origin=True,
                                              enable_multithread=False)

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:  # noqa: BLE001 - closing a connection to a process about to be killed
                pass
            self.ws = None
        if self.process is not None:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.process.pid, sig)  # Chromium's whole process group (renderers, zygotes)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            try:  # stragglers of the group
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process = None
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def alive(self) -> bool:
        """Whether Chromium runs and its DevTools connection is open."""
        return (self.process is not None and self.process.poll() is None and self.ws is not None
                and bool(getattr(self.ws, "connected", False)))

    # ---- protocol ----
    def _receive(self, deadline: float) -> dict:
        import websocket

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for Chromium")
        self.ws.settimeout(remaining)
        try:
            message = json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException as err:
            raise TimeoutError("timed out waiting for Chromium") from err
        except websocket.WebSocketConnectionClosedException as err:
            raise BrowserError("Chromium closed the DevTools connection (did it crash?)") from err
        if message.get("method") == "Page.javascriptDialogOpening":
            # An alert() stops the page's scripts until it is answered: answer it at once (it is reported).
            self._next_id += 1
            self.ws.send(json.dumps({"id": self._next_id, "method": "Page.handleJavaScriptDialog",
                                     "params": {"accept": True}, "sessionId": message.get("sessionId")}))
        return message

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             deadline: float | None = None) -> dict:
        """Send one DevTools command and wait for its answer (events arriving meanwhile are kept)."""
        self._next_id += 1
        call_id = self._next_id
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = deadline if deadline is not None else time.monotonic() + PAGE_TIMEOUT
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == call_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error'].get('message')} {answer['error'].get('data', '')}")
                return answer.get("result", {})
            if "method" in answer:
                self._events.append(answer)

    def wait_event(self, method: str, session: str | None, deadline: float) -> dict:
        """The next event ``method`` of ``session`` (events of other kinds stay queued)."""
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            answer = self._receive(deadline)
            if "method" in answer:
                self._events.append(answer)

    def take_events(self, session: str) -> list[dict]:
        """The events of ``session`` received so far (removed from the queue)."""
        mine = [e for e in self._events if e.get("sessionId") == session]
        self._events = [e for e in self._events if e.get("sessionId") != session]
        return mine

    def evaluate(self, expression: str, session: str, deadline: float) -> Any:
        """The value of a JavaScript expression in the page (promises awaited), or :class:`BrowserError`."""
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                           session, deadline)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"script failed: {text}")
        return result.get("result", {}).get("value")

    def stop_scripts(self, session: str, deadline: float) -> None:
        """Stop a page's running script and run no more (what is on screen stays; the DevTools can still read it)."""
        self.call("Runtime.terminateExecution", {}, session, deadline)
        self.call("Emulation.setScriptExecutionDisabled", {"value": True}, session, deadline)

    @contextmanager
    def page(self, deadline: float) -> Iterator[str]:
        """A fresh tab at :data:`VIEWPORT` with the Page, Runtime and Network domains on; yields its session."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, deadline=deadline)["targetId"]
        try:
            session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                deadline=deadline)["sessionId"]
            for domain in ("Page", "Runtime", "Network"):
                self.call(f"{domain}.enable", {}, session, deadline)
            width, height = VIEWPORT
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session, deadline)
            self.call("Network.setCacheDisabled", {"cacheDisabled": True}, session, deadline)
            self.call("Page.bringToFront", {}, session, deadline)  # a background tab runs no animation frames
            yield session
        finally:
            try:
                self.call("Target.closeTarget", {"targetId": target}, deadline=time.monotonic() + 10)
            except (BrowserError, TimeoutError):
                pass
            if session_id := locals().get("session"):
                self.take_events(session_id)


# --------------------------------------------------------------------------------------------------
# The page checks
# --------------------------------------------------------------------------------------------------

#: The page's state while it settles: whether it has math, which MathJax, whether the typesetting is done (a hook
#: set on the first look), how many images are still loading. Read every :data:`POLL` seconds.
_STATUS_JS = r"""
(() => {
  const MJ = window.MathJax;
  const hasMath = !!document.querySelector('.math, script[type^="math/tex"], mjx-container, .MathJax_CHTML');
  let mathjax = 'none';
  if (MJ && MJ.Hub && MJ.Hub.Queue && MJ.Hub.Register) mathjax = '2';
  else if (MJ && MJ.startup && MJ.startup.promise) mathjax = '3';
  // Once MathJax has started, a mark queued behind its typesetting (MathJax 2: the Hub's queue; 3: the startup promise)
  if (window.__checkTypeset === undefined && (mathjax === '2' && MJ.isReady || mathjax === '3')) {
    window.__checkTypeset = false;
    if (mathjax === '2') {
      MJ.Hub.Queue(function () { window.__checkTypeset = true; });
    } else {
      MJ.startup.promise.then(() => { window.__checkTypeset = true; });
    }
  }
  const images = [...document.images];
  images.forEach(img => { if (img.loading === 'lazy') img.loading = 'eager'; });
  const box = document.getElementById('MathJax_Message');  // "Typesetting math: 100%" fades out after the typesetting
  const message = box && getComputedStyle(box).display !== 'none' ? box.textContent : '';
  return {hasMath, mathjax, typeset: window.__checkTypeset === true, message,
          imagesPending: images.filter(img => !img.complete).length, fonts: document.fonts.status};
})()
"""
#: Seconds between two looks at a settling page; a page that does not answer within :data:`HUNG` seconds is hung.
POLL = 0.25
HUNG = 8.0

#: Two animation frames (or half a second): the last layout is painted.
_PAINTED_JS = "Promise.race([new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))), " \
              "new Promise(r => setTimeout(r, 500))]).then(() => true)"

#: Reads the page: returns the findings as JSON-able data (judged in Python by :func:`_judge`).
_INSPECT_JS = r"""
(() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('[role="main"]')
    || document.querySelector('main') || document.body;
  const short = (s, n = 90) => {
    s = (s || '').replace(/\s+/g, ' ').trim();
    return s.length > n ? s.slice(0, n) + '…' : s;
  };
  const headings = [...article.querySelectorAll('h1, h2, h3, h4')];
  const where = el => {  // the nearest heading before the element: where a reader finds it
    let best = '';
    for (const h of headings) {
      if (h.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING) {
        best = short(h.textContent.replace('#', ''), 60);
      }
    }
    return best;
  };
  const cs = getComputedStyle(article);
  const ar = article.getBoundingClientRect();
  const column = {left: ar.left + parseFloat(cs.paddingLeft), right: ar.right - parseFloat(cs.paddingRight)};
  column.width = column.right - column.left;

  // figures and images
  const images = [...article.querySelectorAll('img')].map(img => ({
    src: img.getAttribute('src') || '', loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth,
    inFigure: !!img.closest('figure'), where: where(img)}));
  const figures = [...article.querySelectorAll('figure')].map(f => {
    const imgs = [...f.querySelectorAll('img')];
    return {loaded: imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0),
            caption: short(f.textContent, 60), where: where(f)};
  });

  // text, outside code and rendered math, one line per block
  const skip = 'pre, code, script, style, textarea, .MathJax, .MathJax_CHTML, .MathJax_Display, .MathJax_SVG, ' +
               'mjx-container, .mjx-chtml, .MathJax_MathML, .headerlink';
  const blocks = 'p, li, dd, dt, td, th, caption, figcaption, h1, h2, h3, h4, h5, h6, div, blockquote, section';
  const blockOf = n => n.parentElement.closest(blocks);
  const prose = [];  // [{text, where}] of the blocks whose text has a $ or a backslash
  let text = '', lastBlock = null;
  const flush = () => {
    if (lastBlock && /[$\\]/.test(text)) prose.push({text, where: where(lastBlock)});
    text = '';
  };
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.parentElement || n.parentElement.closest(skip)) continue;
    const block = blockOf(n);
    if (block !== lastBlock) { flush(); lastBlock = block; }
    text += n.nodeValue.replace(/\n/g, ' ');
  }
  flush();
  // all text but code cell inputs: raw MyST roles
  const clone = article.cloneNode(true);
  clone.querySelectorAll('.cell_input, script, style').forEach(e => e.remove());
  const nonInput = clone.textContent;

  // errors shown in the page
  const allText = article.textContent;
  const tracebacks = [...article.querySelectorAll('.output.traceback, .output.error, .output_error, .traceback')]
    .map(e => ({text: short((e.querySelector('pre') || e).textContent, 160), where: where(e)}));
  const stderr = [...article.querySelectorAll('.output.stderr, .stderr')].filter(e => /Error/.test(e.textContent))
    .map(e => ({text: short((e.textContent.match(/^.*Error.*$/m) || [e.textContent])[0], 160), where: where(e)}));

  // MathJax errors
  // MathJax 2: processing errors, noErrors' boxed source, noUndefined's red macro names; MathJax 3: merror
  const mathErrors = [...article.querySelectorAll('.MathJax_Error, .mjx-noError, .noError, .mjx-merror, ' +
      '.mjx-mtext[style*="color: red"], mjx-merror, [data-mjx-error]')]
    .map(e => ({text: short(e.getAttribute('data-mjx-error') || e.textContent, 120), where: where(e)}));
  let signals = [];
  if (window.MathJax && MathJax.Hub && MathJax.Hub.signal) {
    MathJax.Hub.signal.Interest(m => {  // replays the messages posted so far
      const name = Array.isArray(m) ? String(m[0]) : String(m);
      if (/error|undefined control sequence/i.test(name)) {
        const parts = m.slice(0, 3).map(x => (x && x.nodeType) ? (x.textContent || x.text || '') : String(x));
        signals.push(short(parts.join(': '), 160));
      }
    });
  }
  const preview = [...article.querySelectorAll('.MathJax_Preview')].filter(e => e.textContent.trim()).length;
  const pendingMath = [...article.querySelectorAll('.math')].filter(e =>
      !e.querySelector('.MathJax_CHTML, .MathJax, mjx-container, script[type^="math/tex"]') &&
      !e.closest('.MathJax_CHTML, mjx-container')).length;

  // boxes wider than they are
  const overflow = (el, slack) => el.clientWidth > 0 && el.scrollWidth > el.clientWidth + slack;
  const codeKind = el => (el.closest('details:not([open])') ? 'hidden ' : '')
    + (el.closest('.cell_input') ? 'code cell input' : el.closest('.cell_output, .output') ? 'cell output'
       : 'code block');
  const longest = el => short([...el.textContent.split('\n')].sort((a, b) => b.length - a.length)[0], 70);
  const code = [...article.querySelectorAll('pre')].filter(el => overflow(el, %(slack)d)).map(el => {
    el.dataset.checked = 'overflow';  // measured: not again once the hidden parts are opened
    return {kind: codeKind(el), scrollWidth: el.scrollWidth, clientWidth: el.clientWidth, line: longest(el),
            where: where(el)};
  });
  const tables = [...article.querySelectorAll('table')].map(t => ({t, r: t.getBoundingClientRect()}))
    .filter(({r}) => r.width > 0 && r.width > column.width + %(slack)d).map(({t, r}) => ({
      width: Math.round(r.width), columnWidth: Math.round(column.width),
      head: short([...t.querySelectorAll('th')].slice(0, 6).map(h => h.textContent).join(' | ') || t.textContent, 70),
      where: where(t)}));
  const doc = document.documentElement;
  return {
    title: document.title, images, figures, prose, nonInput, hasTraceback: /Traceback/.test(allText), tracebacks,
    stderr, mathErrors, signals, preview, pendingMath, code, tables, column: Math.round(column.width),
    page: {scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth,
           height: Math.max(doc.scrollHeight, document.body.scrollHeight)},
  };
})()
"""

#: Opens the page's collapsed parts (hidden cells, toggles), so that their code is measured too.
_EXPAND_JS = r"""
(() => {
  let n = 0;
  document.querySelectorAll('details:not([open])').forEach(d => { d.open = true; n++; });
  document.querySelectorAll('.toggle-hidden').forEach(e => { e.classList.remove('toggle-hidden'); n++; });
  return n;
})()
"""

#: The code boxes that scroll sideways once the hidden parts are open (those not reported before).
_CODE_ONLY_JS = r"""
(() => {
  const article = document.querySelector('article.bd-article') || document.querySelector('[role="main"]')
    || document.querySelector('main') || document.body;
  const short = (s, n) => {
    s = (s || '').replace(/\s+/g, ' ').trim();
    return s.length > n ? s.slice(0, n) + '…' : s;
  };
  return [...article.querySelectorAll('pre')]
    .filter(el => !el.dataset.checked && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + %(slack)d)
    .map(el => ({kind: el.closest('.cell_input') ? 'hidden code cell input' : 'hidden cell output',
                 scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
                 line: short([...el.textContent.split('\n')].sort((a, b) => b.length - a.length)[0], 70)}));
})()
"""

#: Unrendered TeX in prose (code and typeset math excluded).
TEX_PATTERNS = {
    r"\( \)": re.compile(r"\\\((?:[^\n]{0,60}?\\\)|[^\n]{0,60})"),
    r"\[ \]": re.compile(r"\\\[(?:[^\n]{0,60}?\\\]|[^\n]{0,60})"),
    "$$": re.compile(r"\$\$[^\n]{0,60}"),
    "$...$": re.compile(r"(?<![\\$\w])\$(?=[^\s$])[^$\n]{1,200}?(?<=[^\s$\\])\$(?![\w$])"),
    r"\begin{...}": re.compile(r"\\begin\{[a-z*]+\}[^\n]{0,60}"),
}
#: Raw MyST (glue and other roles or directives the parser left as text).
RAW_MYST = re.compile(r"\{glue[:}][^\s]{0,40}|\{(numref|eq|math|doc|ref|cite|download|term)\}`[^`]*`")
_MONEY = re.compile(r"^\$[\d.,\s]+\$$")


@dataclass
class PageReport:
    """What one page showed: ``problems`` (a reader sees something wrong) and ``notes`` (worth knowing)."""

    file: str
    url: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    seconds: float = 0.0
    height: int = 0
    expected: dict[str, int] | None = None

    def text(self) -> str:
        head = f"{self.file}.html ({self.seconds:.1f} s, {self.height} px tall)"
        lines = [f"  - {p}" for p in self.problems] or ["  ok"]
        lines += [f"  note: {n}" for n in self.notes]
        if self.screenshot:
            lines.append(f"  screenshot: {self.screenshot}")
        return "\n".join([head, *lines])


def _judge(report: PageReport, settled: dict, found: dict, hidden_code: list[dict]) -> None:
    problems, notes = report.problems, report.notes
    at = lambda item: f" (under '{item['where']}')" if item.get("where") else ""  # noqa: E731

    # figures
    for img in found["images"]:
        if not img["loaded"]:
            problems.append(f"image not loaded: {img['src']}{at(img)}")
    if not settled["imagesLoaded"]:
        problems.append(f"{settled['imagesPending']} image(s) still loading"
                        + ("" if settled.get("stopped") else f" after {IMAGES_TIMEOUT:.0f} s"))
    loaded = sum(img["loaded"] for img in found["images"])
    loaded_figures = sum(f["loaded"] for f in found["figures"])
    expected = report.expected
    if expected is not None:
        if expected["glue_figures"] and loaded_figures < expected["glue_figures"]:
            problems.append(f"the notebook has {expected['glue_figures']} {{glue:figure}} directive(s) but the page "
                            f"shows "
                            f"{loaded_figures} <figure> with a loaded image")
        if expected["image_outputs"] and not loaded:
            problems.append(f"the notebook has {expected['image_outputs']} image output(s) but the page shows no "
                            "loaded image")
    else:
        notes.append("no executed notebook found: the figure count is not checked against it")

    # errors
    if found["hasTraceback"]:
        problems.append("'Traceback' in the page")
    for tb in found["tracebacks"]:
        problems.append(f"error output{at(tb)}: {tb['text']}")
    for err in found["stderr"]:
        problems.append(f"stderr output with an error{at(err)}: {err['text']}")

    # raw MyST and TeX
    for match in sorted({m.group(0) for m in RAW_MYST.finditer(found["nonInput"])})[:10]:
        problems.append(f"raw MyST text: {match!r}")
    for name, pattern in TEX_PATTERNS.items():
        hits = [(m.group(0), block["where"]) for block in found["prose"] for m in pattern.finditer(block["text"])]
        hits = [(h, w) for h, w in hits if not (name == "$...$" and _MONEY.match(h))]
        if hits:
            problems.append(f"unrendered TeX ({name}) x{len(hits)}: "
                            + "; ".join(f"{h[:60]!r}" + (f" (under '{w}')" if w else "") for h, w in hits[:3]))

    # MathJax
    if settled["hasMath"]:
        if settled["mathjax"] == "none":
            problems.append("the page has math but MathJax did not load"
                            + (" (its script could not be fetched)" if settled.get("mathjaxFailed")
                               else f" within {MATHJAX_TIMEOUT:.0f} s"))
        elif not settled["typeset"]:
            problems.append(f"MathJax {settled['mathjax']} did not finish typesetting"
                            + (" (the page's scripts hung)" if settled.get("stopped")
                               else f" within {MATHJAX_TIMEOUT:.0f} s")
                            + (f"; its message box shows {settled['message']!r}" if settled.get("message") else ""))
        else:
            notes.append(f"MathJax {settled['mathjax']} typeset the page "
                         f"({settled['waited']:.1f} s after the load event)")
            if settled.get("message"):
                notes.append(f"MathJax's message box still shows {settled['message']!r}")
    for err in found["mathErrors"][:10]:
        problems.append(f"MathJax error element{at(err)}: {err['text']}")
    for message in sorted(set(found["signals"]))[:10]:
        problems.append(f"MathJax: {message}")
    if found["preview"]:
        problems.append(f"{found['preview']} MathJax preview(s) left (math not typeset)")
    if found["pendingMath"] and settled["mathjax"] != "none":
        problems.append(f"{found['pendingMath']} math element(s) MathJax did not process")

    # layout
    for box in found["code"] + hidden_code:
        problems.append(f"{box['kind']} scrolls sideways ({box['scrollWidth']} > {box['clientWidth']} px)"
                        f"{at(box)}: {box['line']!r}")
    for table in found["tables"]:
        problems.append(f"table wider than the content column ({table['width']} > {table['columnWidth']} px)"
                        f"{at(table)}: {table['head']!r}")
    page = found["page"]
    if page["scrollWidth"] > page["clientWidth"] + OVERFLOW_SLACK:
        problems.append(f"the page scrolls sideways ({page['scrollWidth']} > {page['clientWidth']} px)")


#: JavaScript errors every Jupyter Book 1.x page has, harmless to a reader (noted, not failed): sphinx-thebe's
#: configuration script is written into the page twice (its launch button is off in this book).
HARMLESS_JS_ERRORS = (re.compile(r"Identifier 'THEBE_JS_URL' has already been declared"),)
#: Requests a browser makes by itself (not the page's).
BROWSER_REQUESTS = ("favicon.ico",)


def _network(report: PageReport, events: list[dict], base: str) -> None:
    """Failed local requests (a missing file), JavaScript exceptions and dialogs are problems; requests to other
    hosts (blocked: the check runs offline) a note."""
    urls: dict[str, str] = {}
    missing, outside = [], set()
    js_errors: dict[str, list[str]] = {}
    for event in events:
        params = event.get("params", {})
        if event["method"] == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        elif event["method"] == "Network.responseReceived":
            status, url = params["response"]["status"], params["response"]["url"]
            if status >= 400 and url.startswith(base) and not url[len(base):].startswith(BROWSER_REQUESTS):
                missing.append(f"{url[len(base):]} (HTTP {status})")
        elif event["method"] == "Network.loadingFailed" and not params.get("canceled"):
            url = urls.get(params["requestId"], "?")
            if url.startswith(base):
                if not url[len(base):].startswith(BROWSER_REQUESTS):
                    missing.append(f"{url[len(base):]} ({params.get('errorText')})")
            elif url.startswith(("http:", "https:")):
                outside.add(re.sub(r"^(https?://[^/]+/).*", r"\1...", url))
        elif event["method"] == "Page.javascriptDialogOpening":
            report.problems.append(f"the page opened a {params.get('type', '')} dialog: "
                                   f"{params.get('message', '')[:200]!r}")
        elif event["method"] == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text") or "?"
            script = details.get("url", "").removeprefix(base).split("?")[0] or "inline"
            js_errors.setdefault(text.splitlines()[0][:160], []).append(f"{script}:{details.get('lineNumber', '?')}")
    for item in sorted(set(missing))[:10]:
        report.problems.append(f"local file not served: {item}")
    if len(set(missing)) > 10:
        report.problems.append(f"... and {len(set(missing)) - 10} more local files not served")
    for text, where in list(js_errors.items()):
        if any(p.search(text) for p in HARMLESS_JS_ERRORS):
            report.notes.append(f"known harmless JavaScript error: {text}")
            del js_errors[text]
    for text, where in list(js_errors.items())[:5]:
        more = f" and {len(where) - 1} more place(s)" if len(where) > 1 else ""
        report.problems.append(f"JavaScript error: {text} ({where[0]}{more})")
    if len(js_errors) > 5:
        report.problems.append(f"... and {len(js_errors) - 5} more kinds of JavaScript error "
                               f"({sum(len(w) for w in list(js_errors.values())[5:])} in all)")
    if outside:
        report.notes.append(f"requests to other hosts (blocked, offline): {', '.join(sorted(outside))}")


def check_page(browser: Browser, base_url: str, html: Path, file: str, screenshots: Path | None = None,
               notebook: Path | None = None, timeout: float = PAGE_TIMEOUT) -> PageReport:
    """Open ``<html>/<file>.html`` (served at ``base_url``), check it, and save its full-page screenshot to
    ``screenshots/<chapter>.png``."""
    started = time.monotonic()
    deadline = started + timeout
    step = _stepper(file, started)
    url = base_url + quote(f"{file}.html")
    report = PageReport(file=file, url=url)
    if not (html / f"{file}.html").is_file():
        report.problems.append(f"page missing: {html / f'{file}.html'} (is {file} in the build's _toc.yml?)")
        return report
    if notebook is not None:
        report.expected = notebook_expectations(notebook)
    try:
        with browser.page(deadline) as session:
            nav = browser.call("Page.navigate", {"url": url}, session, deadline)
            if nav.get("errorText"):
                report.problems.append(f"page did not open: {nav['errorText']}")
                return report
            browser.wait_event("Page.loadEventFired", session, deadline)
            step("load event")
            settled = _settle(browser, session, deadline, report)
            step(f"settled {settled}")
            found = _evaluate_or_stop(browser, session, _INSPECT_JS % {"slack": OVERFLOW_SLACK}, deadline, report,
                                      "reading the page")
            step("inspected")
            report.height = int(found["page"]["height"])
            if screenshots is not None:
                report.screenshot = _screenshot(browser, session, screenshots / f"{chapter_name(file)}.png",
                                                found["page"], deadline, report)
            step("screenshot")
            opened = browser.evaluate(_EXPAND_JS, session, deadline)
            hidden_code = (browser.evaluate(_CODE_ONLY_JS % {"slack": OVERFLOW_SLACK}, session, deadline)
                           if opened else [])
            _judge(report, settled, found, hidden_code)
            _network(report, browser.take_events(session), base_url)
    except TimeoutError:
        report.problems.append(f"timed out after {timeout:.0f} s")
    except BrowserError as err:
        report.problems.append(f"browser: {err}")
    report.seconds = time.monotonic() - started
    return report


def _hung(browser: Browser, session: str, deadline: float, report: PageReport, what: str) -> None:
    report.problems.append(f"the page stopped responding ({what}: no answer within {HUNG:.0f} s, a script is busy "
                           "in a loop); its scripts were stopped to finish the checks")
    browser.stop_scripts(session, deadline)


def _evaluate_or_stop(browser: Browser, session: str, expression: str, deadline: float, report: PageReport,
                      what: str) -> Any:
    """Evaluate a (synchronous) expression; a page that does not answer has its scripts stopped, and is asked again."""
    try:
        return browser.evaluate(expression, session, min(deadline, time.monotonic() + HUNG))
    except TimeoutError:
        if time.monotonic() > deadline - 1:
            raise
        _hung(browser, session, deadline, report, what)
        return browser.evaluate(expression, session, deadline)


def _settle(browser: Browser, session: str, deadline: float, report: PageReport) -> dict:
    """Wait until MathJax has typeset the page (where it has math) and its images have loaded, looking every
    :data:`POLL` seconds; returns the last look, with ``waited`` (seconds), ``stopped`` (the page hung) and
    ``imagesLoaded``."""
    start = time.monotonic()
    mathjax_until = min(start + MATHJAX_TIMEOUT, deadline - 20)
    images_until = min(start + IMAGES_TIMEOUT, deadline - 20)
    stopped = False
    while True:
        try:
            status = browser.evaluate(_STATUS_JS, session, min(deadline, time.monotonic() + HUNG))
        except TimeoutError:
            if time.monotonic() > deadline - 1:
                raise
            _hung(browser, session, deadline, report, "waiting for MathJax")
            status = browser.evaluate(_STATUS_JS, session, deadline)
            stopped = True
            break
        now = time.monotonic()
        failed = status["hasMath"] and status["mathjax"] == "none" and _mathjax_failed(browser, session)
        status["mathjaxFailed"] = failed  # its script could not be fetched: nothing to wait for
        typeset = status["typeset"] and not status["message"]  # done, and its message box gone
        math_done = not status["hasMath"] or typeset or failed or now > mathjax_until
        images_done = not status["imagesPending"] or now > images_until
        if math_done and images_done and status["fonts"] == "loaded" or now > max(mathjax_until, images_until) \
                or now > deadline - 20:
            break
        time.sleep(POLL)
    if not stopped:
        try:
            browser.evaluate(_PAINTED_JS, session, min(deadline, time.monotonic() + 2))
        except TimeoutError:
            pass
    status.update(waited=time.monotonic() - start, stopped=stopped, imagesLoaded=not status["imagesPending"])
    return status


def _mathjax_failed(browser: Browser, session: str) -> bool:
    """Whether the page's request for a MathJax script failed (e.g. from a CDN, offline)."""
    events = [e for e in browser._events if e.get("sessionId") == session]
    wanted = {e["params"]["requestId"] for e in events if e["method"] == "Network.requestWillBeSent"
              and "mathjax" in e["params"]["request"]["url"].lower()}
    return any(e["method"] == "Network.loadingFailed" and e["params"]["requestId"] in wanted
               and not e["params"].get("canceled") for e in events)


def _stepper(file: str, started: float):
    """Prints the steps of a page's check to stderr when ``$MIFGSM_BROWSER_DEBUG`` is set."""
    debug = bool(os.environ.get("MIFGSM_BROWSER_DEBUG"))

    def step(what: str) -> None:
        if debug:
            print(f"[{file} +{time.monotonic() - started:.1f} s] {what}", file=sys.stderr, flush=True)

    return step


def _screenshot(browser: Browser, session: str, path: Path, page: dict, deadline: float, report: PageReport) -> Path:
    """The whole page as one PNG: the viewport made as tall as the document (Chromium's captureBeyondViewport shifts
    this theme's content sideways at random), then set back."""
    width, height = VIEWPORT
    full = int(page["height"])
    for _ in range(2):  # the document may grow or shrink once the viewport is taller
        shown = max(height, min(full, MAX_SCREENSHOT_HEIGHT))
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": shown, "deviceScaleFactor": 1, "mobile": False}, session, deadline)
        try:
            browser.evaluate(_PAINTED_JS, session, min(deadline, time.monotonic() + 2))
        except TimeoutError:
            pass
        now = browser.evaluate("Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)",
                               session, min(deadline, time.monotonic() + 5))
        if now == full:
            break
        full = int(now)
    if full > MAX_SCREENSHOT_HEIGHT:
        report.notes.append(f"screenshot cut at {MAX_SCREENSHOT_HEIGHT} of {full} px")
    shot = browser.call("Page.captureScreenshot", {"format": "png", "fromSurface": True}, session, deadline)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session, deadline)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


class BookChecker:
    """One Chromium and one local server for the pages of a built book: ``with BookChecker(html) as book:
    book.check("book/attacks")``. Screenshots go to ``<html>/_screenshots`` unless told otherwise."""

    def __init__(self, html: Path, screenshots: Path | None = None, executed: Path | None = None,
                 timeout: float = PAGE_TIMEOUT) -> None:
        self.html = Path(html).resolve()
        self.screenshots = Path(screenshots) if screenshots else self.html / SCREENSHOTS
        self.executed = Path(executed) if executed else None
        self.timeout = timeout
        self._server: Any = None
        self.base_url = ""
        self.browser: Browser | None = None

    def __enter__(self) -> BookChecker:
        if not (self.html / "index.html").is_file():
            raise FileNotFoundError(f"{self.html}: no index.html; build the book first (mifgsm book --out DIR)")
        self.browser = Browser().__enter__()  # before the server's thread: Chromium is forked from one thread
        try:
            self._server = serve(self.html)
            self.base_url = self._server.__enter__()
        except BaseException:
            self.browser.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.browser is not None:
            self.browser.close()
            self.browser = None
        if self._server is not None:
            self._server.__exit__(None, None, None)
            self._server = None

    def notebook(self, file: str) -> Path | None:
        if self.executed is not None:
            candidate = self.executed / f"{file}.ipynb"
            return candidate if candidate.is_file() else None
        return find_notebook(self.html, file)

    def check(self, file: str) -> PageReport:
        """Check one page (``book/attacks``); a Chromium that died on an earlier page is started afresh."""
        assert self.browser is not None, "use BookChecker as a context manager"
        if not self.browser.alive():
            self.browser.close()
            self.browser = Browser().__enter__()
        return check_page(self.browser, self.base_url, self.html, file, self.screenshots, self.notebook(file),
                          self.timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/screenshots.py",
        description="Open every chapter of a built book in headless Chromium (offline, 1280x900), save full-page "
                    "screenshots to <html>/_screenshots and print the problems found. Exit status 1 when there are "
                    "problems. $MIFGSM_BROWSER_DEBUG=1 prints each page's steps.",
        epilog="Checks:\n" + CHECKS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("html", type=Path, help="the built HTML folder (e.g. DIR/_build/html)")
    parser.add_argument("--toc", type=Path, help="the _toc.yml listing the chapters (default: DIR/_build/executed/"
                                                 "_toc.yml beside the HTML, else the repository's)")
    parser.add_argument("--executed", type=Path, help="the executed notebooks (default: DIR/_build/executed, else "
                                                      "the build's _sources)")
    parser.add_argument("--screenshots", type=Path, help=f"where the PNGs go (default: <html>/{SCREENSHOTS})")
    parser.add_argument("--page", action="append", help="check only this page (e.g. book/attacks); repeatable")
    parser.add_argument("--timeout", type=float, default=PAGE_TIMEOUT, help="seconds per page (default %(default)s)")
    args = parser.parse_args(argv)
    if not (args.html / "index.html").is_file():
        parser.error(f"{args.html}: no index.html; build the book first (mifgsm book --out DIR)")
    toc = args.toc or default_toc(args.html)
    files = args.page or toc_files(toc)
    print(f"checking {len(files)} page(s) of {args.html} (chapters from {toc})", flush=True)
    total = time.monotonic()
    reports = []
    with BookChecker(args.html, args.screenshots, args.executed, args.timeout) as book:
        for file in files:
            report = book.check(file)
            print(report.text(), flush=True)
            reports.append(report)
    bad = [r for r in reports if r.problems]
    print(f"{len(reports)} page(s) in {time.monotonic() - total:.1f} s: "
          f"{sum(len(r.problems) for r in reports)} problem(s) on {len(bad)} page(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
