// The SBOM upload page: validate a file with this plugin's API, store it, then trigger and follow a
// composer_mirror_sbom run through Airflow's public REST API. Every request carries the user's own
// Airflow session (the UI's cookie); nothing here holds a token. Text from the server or the file
// only ever goes into textContent, never into HTML.
"use strict";

(() => {
  const DAG_ID = "composer_mirror_sbom";
  const PLUGIN_API = new URL("api/", window.location.href);
  // The page is served at <airflow>/composer-mirror/, so Airflow itself is one level up.
  const AIRFLOW = new URL("../", window.location.href);
  const PLUGIN_HEADERS = { "X-Composer-Mirror": "1" };
  const POLL_MS = 3000;
  const FINAL_STATES = new Set(["success", "failed"]);

  const $ = (id) => document.getElementById(id);
  const fileInput = $("sbom-file");
  const mirrorButton = $("mirror-button");
  let checkedFile = null;
  let pollTimer = null;

  function show(id, visible) {
    $(id).hidden = !visible;
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  function setError(text) {
    $("error").textContent = text || "";
    show("error", Boolean(text));
  }

  function fillList(id, items) {
    const list = $(id);
    list.replaceChildren(
      ...items.map((item) => {
        const li = document.createElement("li");
        li.textContent = item;
        return li;
      }),
    );
    show(`${id}-block`, items.length > 0);
  }

  function errorMessage(response, body) {
    const detail = body && body.detail;
    let text = response.statusText || "request failed";
    if (typeof detail === "string") {
      text = detail;
    } else if (Array.isArray(detail)) {
      text = detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    } else if (detail) {
      text = JSON.stringify(detail);
    }
    if (response.status === 401) {
      return `Your Airflow session has ended (${text}). Reload the page to log in again.`;
    }
    if (response.status === 403) {
      return `Not allowed: ${text}`;
    }
    return `${response.status}: ${text}`;
  }

  async function call(url, options) {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      throw new Error(errorMessage(response, body));
    }
    return body;
  }

  // The file is the request body itself, not a form: the server checks its size (the
  // Content-Length) before reading it. Its name travels in the query string.
  function upload(path, file) {
    const url = new URL(path, PLUGIN_API);
    url.searchParams.set("filename", file.name);
    return call(url, { method: "POST", headers: PLUGIN_HEADERS, body: file });
  }

  function renderSummary(file, summary) {
    $("summary-file").textContent = `${file.name} (${summary.bytes} bytes)`;
    $("summary-format").textContent = summary.format || "not recognised";
    $("summary-components").textContent = String(summary.components);
    $("summary-composer").textContent = String(summary.composer_components);
    $("summary-unversioned").textContent = String(summary.unversioned);
    const rows = Object.entries(summary.skipped || {}).map(([reason, count]) => {
      const tr = document.createElement("tr");
      for (const value of [reason, String(count)]) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(td);
      }
      return tr;
    });
    $("skipped").tBodies[0].replaceChildren(...rows);
    show("skipped-block", rows.length > 0);
    fillList("problems", summary.problems || []);
    fillList("warnings", summary.warnings || []);
    $("sample").textContent = (summary.sample || []).join(", ");
    show("sample-block", (summary.sample || []).length > 0);
    show("summary", true);
  }

  function resetRun() {
    window.clearTimeout(pollTimer);
    pollTimer = null;
    show("run", false);
    $("run-state").textContent = "";
    $("run-state").className = "state";
  }

  async function onFileChosen() {
    const file = fileInput.files[0];
    checkedFile = null;
    setError("");
    resetRun();
    show("summary", false);
    show("mirror", false);
    if (!file) {
      setStatus("");
      return;
    }
    setStatus(`Checking ${file.name}…`);
    try {
      const summary = await upload("validate", file);
      renderSummary(file, summary);
      if (summary.valid) {
        checkedFile = file;
        mirrorButton.disabled = false;
        show("mirror", true);
        setStatus(`${file.name} is valid: ${summary.composer_components} Composer components to mirror.`);
      } else {
        setStatus(`${file.name} cannot be mirrored.`);
      }
    } catch (error) {
      setStatus("");
      setError(error.message);
    }
  }

  function runUrl(runId) {
    return new URL(`dags/${encodeURIComponent(DAG_ID)}/runs/${encodeURIComponent(runId)}`, AIRFLOW);
  }

  function runApiUrl(runId) {
    const base = `api/v2/dags/${encodeURIComponent(DAG_ID)}/dagRuns`;
    return new URL(runId === undefined ? base : `${base}/${encodeURIComponent(runId)}`, AIRFLOW);
  }

  // Inside the UI's sandboxed frame a link cannot navigate the top window, but the frame is
  // same-origin: push the run's path into the UI's history and let its router follow.
  function openInAirflow(event) {
    try {
      if (window.top === window || window.top.location.origin !== window.location.origin) {
        return;
      }
      event.preventDefault();
      const url = new URL(event.currentTarget.href);
      window.top.history.pushState({}, "", url.pathname + url.search);
      window.top.dispatchEvent(new PopStateEvent("popstate", { state: {} }));
    } catch {
      // Cross-origin or blocked: the plain link (target=_top) is all there is.
    }
  }

  function showState(state) {
    const element = $("run-state");
    element.textContent = state;
    element.className = `state ${state}`;
  }

  async function poll(runId) {
    try {
      const run = await call(runApiUrl(runId));
      showState(run.state);
      if (FINAL_STATES.has(run.state)) {
        setStatus(`The run finished: ${run.state}.`);
        return;
      }
    } catch (error) {
      setError(`Could not read the run's state: ${error.message}`);
    }
    pollTimer = window.setTimeout(() => poll(runId), POLL_MS);
  }

  // A paused DAG keeps the run queued: say so rather than leave the user watching "queued".
  async function pausedNote() {
    try {
      const dag = await call(new URL(`api/v2/dags/${encodeURIComponent(DAG_ID)}`, AIRFLOW));
      return dag.is_paused ? ` ${DAG_ID} is paused: the run stays queued until the DAG is unpaused.` : "";
    } catch {
      return "";
    }
  }

  async function onMirror() {
    const file = checkedFile;
    if (!file) {
      return;
    }
    mirrorButton.disabled = true;
    setError("");
    resetRun();
    const withDependencies = $("with-dependencies").checked;
    const dryRun = $("dry-run").checked;
    try {
      setStatus(`Storing ${file.name} in the mirror bucket…`);
      const stored = await upload("sboms", file);
      $("stored-key").textContent = stored.uri;
      $("run-link").textContent = "";
      show("run", true);
      setStatus(`Triggering ${DAG_ID}…`);
      const run = await call(runApiUrl(), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          logical_date: null,
          conf: { sbom_s3_key: stored.key, with_dependencies: withDependencies, dry_run: dryRun },
          note: `SBOM upload: ${file.name}${dryRun ? " (dry run)" : ""}`,
        }),
      });
      const link = $("run-link");
      link.textContent = run.dag_run_id;
      link.href = runUrl(run.dag_run_id).href;
      showState(run.state);
      setStatus(`Triggered ${DAG_ID}${dryRun ? " as a dry run" : ""}: following its state.${await pausedNote()}`);
      pollTimer = window.setTimeout(() => poll(run.dag_run_id), POLL_MS);
    } catch (error) {
      setStatus("");
      setError(error.message);
    } finally {
      mirrorButton.disabled = false;
    }
  }

  fileInput.addEventListener("change", onFileChosen);
  mirrorButton.addEventListener("click", onMirror);
  $("run-link").addEventListener("click", openInAirflow);
})();
