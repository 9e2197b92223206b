"""The `hf-endpoint` check: will Hugging Face downloads work from here, through the
endpoint ``HF_ENDPOINT`` names (or the official one)?

The value (scheme, quotes, whitespace, the trailing slash that broke huggingface_hub
before 0.28), where it is set and so who will see it (this process, the shell startup
files, the Windows user environment, the conda env's variables), and what the endpoint
answers, in the three steps huggingface_hub itself takes (https://github.com/huggingface/huggingface_hub/
blob/main/src/huggingface_hub/file_download.py: get_hf_file_metadata needs X-Repo-Commit and an ETag):

1. ``GET {ep}/api/models/{repo}`` is JSON with a 40-hex ``sha``;
2. ``HEAD {ep}/{repo}/resolve/main/config.json``, redirects not followed, carries
   ``X-Repo-Commit`` equal to that sha and an ``ETag`` (what ``hf_hub_download`` requires);
3. ``HEAD`` on a large file: every host its ``Location`` and ``Link`` headers name (the Xet
   storage) is reachable, or small files work while model weights fail.

Every request has a timeout (thresholds.network_timeout_s, 3 s); ``--offline`` skips them.
Proxies, CA bundles, ``HF_HUB_OFFLINE`` and the deprecated ``HF_HUB_ENABLE_HF_TRANSFER``
are explained too.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import sys
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from llmdoctor.fileio import FileIOError, read_shell_lines
from llmdoctor.knowledge.hf import effective_endpoint, intended_endpoint, is_http_url
from llmdoctor.knowledge.shells import USER_STARTUP_FILES
from llmdoctor.models import Check, Finding, FindingKind, ProbeContext, RuleContext, SmokeTest

ENV_NAMES = ("HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER",
             "HF_HUB_DISABLE_XET", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
             "no_proxy", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
def shell_word(text: str) -> str:
    """The value a POSIX shell (or fish) gives an assignment's right-hand side: quotes removed
    as the shell removes them, so ``"'https://m'"`` stays ``'https://m'`` with its inner quotes,
    as new terminals will see it. Unbalanced quotes: the text as written."""
    import shlex

    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return text.strip()
    return words[0] if words else ""


SETTING = re.compile(r"^\s*(?:export\s+|set\s+-gx\s+|setenv\s+)?HF_ENDPOINT[=\s]\s*(.*)$")
SHA = re.compile(r"^[0-9a-f]{40}$")
LINK_URL = re.compile(r"<([^>]+)>")


# ----------------------------------------------------------------------------- probe


def verify_endpoint(endpoint: str, repo: str, small_file: str, large_file: str, timeout: float,
                    environ: dict, compare_with: Optional[str] = None) -> dict:
    """The three steps. Their requests run at once (then the storage hosts, at once), so a
    slow network costs two round trips, not six; each request has its own timeout."""
    from concurrent.futures import ThreadPoolExecutor

    from llmdoctor import http

    def get(url: str, method: str = "GET"):
        return http.request(url, method=method, timeout=timeout, environ=environ)

    http.ssl_context(environ)  # parse the CA bundle once, not once per concurrent first request
    with ThreadPoolExecutor(max_workers=4) as pool:
        api_f = pool.submit(get, f"{endpoint}/api/models/{repo}")
        small_f = pool.submit(get, f"{endpoint}/{repo}/resolve/main/{small_file}", "HEAD")
        large_f = pool.submit(get, f"{endpoint}/{repo}/resolve/main/{large_file}", "HEAD")
        official_f = pool.submit(get, f"{compare_with}/api/models/{repo}") if compare_with else None
        api, small, large = api_f.result(), small_f.result(), large_f.result()
        steps: dict = {"endpoint": endpoint, "api": api.to_json()}
        if official_f is not None:
            official = official_f.result()
            steps["official"] = {"status": official.status, "elapsed_ms": round(official.elapsed_ms, 1),
                                 "error": official.error}
        if api.status == 200:
            try:
                sha = json.loads(api.body.decode("utf-8", "replace")).get("sha")
                steps["api"]["sha"] = sha if isinstance(sha, str) else None
            except (ValueError, AttributeError):
                steps["api"]["json_error"] = "the answer is not JSON"
        if api.error_kind in ("timeout", "dns", "refused", "tls", "proxy"):
            return steps  # the endpoint itself is not there: the other answers say nothing more
        steps["small"], steps["large"] = small.to_json(), large.to_json()
        targets = {}
        for url in _redirect_urls(large.headers, endpoint):
            parts = urlsplit(url)
            targets.setdefault((parts.scheme, parts.hostname, parts.port), f"{parts.scheme}://{parts.netloc}/")
        answers = {key: pool.submit(get, root, "HEAD") for key, root in targets.items()}
        steps["large_hosts"] = [
            {"scheme": scheme, "host": host, "port": port, "reachable": answer.result().status is not None,
             "error": answer.result().error, "error_kind": answer.result().error_kind,
             "elapsed_ms": round(answer.result().elapsed_ms, 1)}
            for (scheme, host, port), answer in answers.items()]
    return steps


def _redirect_urls(headers: dict, endpoint: str) -> list:
    urls = []
    location = headers.get("location")
    if location and urlsplit(location).hostname:  # relative redirects stay on the endpoint
        urls.append(location)
    for url in LINK_URL.findall(headers.get("link", "")):
        if urlsplit(url).hostname and urlsplit(url).hostname != urlsplit(endpoint).hostname:
            urls.append(url)
    return urls


def _where_set(environ: dict) -> dict:
    """Where HF_ENDPOINT is persisted, so rules can tell who will see it."""
    places: dict = {"startup_files": []}
    home = Path(environ.get("HOME") or os.path.expanduser("~"))
    for name in USER_STARTUP_FILES:
        path = home / name
        try:
            lines = read_shell_lines(path)
        except FileIOError:
            continue
        managed = False  # inside llmdoctor's own block: a fix saved it
        for number, line in enumerate(lines, start=1):
            if line.startswith("# >>> llmdoctor hf-endpoint >>>"):
                managed = True
            elif line.startswith("# <<< llmdoctor hf-endpoint <<<"):
                managed = False
            match = SETTING.match(line)
            if match and not line.lstrip().startswith("#"):
                places["startup_files"].append({"file": str(path), "line": number, "managed": managed,
                                                "value": shell_word(match.group(1))})
    conda = environ.get("CONDA_PREFIX")
    if conda and (Path(conda) / "conda-meta").is_dir():
        places["conda_prefix"] = conda
        try:
            state = json.loads((Path(conda) / "conda-meta" / "state").read_text(encoding="utf-8"))
            value = (state.get("env_vars") or {}).get("HF_ENDPOINT")
            if value is not None:
                places["conda"] = {"prefix": conda, "value": value}
        except (OSError, ValueError, AttributeError):
            pass
    if sys.platform == "win32":  # pragma: no cover - needs Windows
        from llmdoctor.winenv import get_backend

        backend = get_backend()
        stored = backend.get("user", "HF_ENDPOINT") if backend else None
        if stored:
            places["windows_user"] = stored[0]
        stored = backend.get("machine", "HF_ENDPOINT") if backend else None
        if stored:
            places["windows_machine"] = stored[0]
    return places


def probe_hf(environ: dict, settings: dict, timeout: float, offline: bool, hub_version: Optional[str],
             candidates: tuple = ()) -> dict:
    raw = environ.get("HF_ENDPOINT")
    facts: dict = {
        "env": {k: environ[k] for k in ENV_NAMES if k in environ},
        "hub_version": hub_version,
        "persisted": _where_set(environ),
        "endpoint": intended_endpoint(raw),
        "official_endpoint": settings["official_endpoint"].rstrip("/"),
        "repo": settings["repo"],
        "offline": offline,
    }
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        if environ.get(name):
            facts.setdefault("ca_files", {})[name] = os.path.exists(environ[name])
    if offline:
        return facts
    verify = dict(repo=settings["repo"], small_file=settings["small_file"], large_file=settings["large_file"],
                  timeout=timeout, environ=environ)
    if is_http_url(facts["endpoint"]):
        compare = facts["official_endpoint"] if facts["endpoint"] != facts["official_endpoint"] else None
        facts["network"] = verify_endpoint(facts["endpoint"], compare_with=compare, **verify)
        if "official" in facts["network"]:
            facts["official"] = facts["network"].pop("official")
    facts["candidates"] = [verify_endpoint(effective_endpoint(url), **verify) for url in candidates
                           if is_http_url(effective_endpoint(url))]
    return facts


def probe(context: ProbeContext) -> dict:
    settings = context.config.hf if context.config is not None else {}
    from llmdoctor.config import DEFAULT_HF

    settings = {**DEFAULT_HF, **settings}
    packages = context.target().get("packages", {})
    timeout = float(context.config.threshold("network_timeout_s")) if context.config else 3.0
    return probe_hf(dict(os.environ), settings, timeout, context.offline, packages.get("huggingface-hub"),
                    tuple(context.options.get("hf_candidates", ())))


# ----------------------------------------------------------------------------- rules


def _older(version: Optional[str], than: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return bool(version) and Version(version) < Version(than)
    except InvalidVersion:
        return False


def _is_private(host: str) -> bool:
    if host in ("localhost",) or host.endswith((".local", ".internal", ".lan", ".corp")):
        return True
    try:
        return ipaddress.ip_address(host).is_private or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return "." not in host  # an intranet short name


def value_findings(raw: str, hub_version: Optional[str]) -> list:
    findings = []
    value = raw
    if value != value.strip():
        findings.append(Finding("hf-endpoint.whitespace", "error",
                                f"HF_ENDPOINT has spaces or a newline around it: {value!r}",
                                "huggingface_hub uses the value as it is; URLs built from it are invalid.",
                                fixes=["hf-endpoint"]))
        value = value.strip()
    if value[:1] in "'\"" or value[-1:] in "'\"":
        findings.append(Finding("hf-endpoint.quoted", "error",
                                f"HF_ENDPOINT contains quotes: {value}",
                                "Quotes written inside the value (common with Windows' setx or .env files) "
                                "become part of every URL.", fixes=["hf-endpoint"]))
        value = value.strip("'\"")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        findings.append(Finding("hf-endpoint.no-scheme", "error",
                                f"HF_ENDPOINT={value} is not a URL: it needs https://",
                                f"huggingface_hub builds requests such as {value}/api/models/..., which fail "
                                f"before reaching any server. Use https://{value.split('/')[0]}.",
                                fixes=["hf-endpoint"]))
        return findings
    if parts.scheme == "http" and not _is_private(parts.hostname):
        findings.append(Finding("hf-endpoint.plain-http", "warning",
                                f"HF_ENDPOINT uses plain http to a public host ({parts.hostname})",
                                "Model files and tokens then cross the network unencrypted and can be altered "
                                "on the way. Use https unless this is a mirror on your own network."))
    if value.endswith("/") and _older(hub_version, "0.28"):
        findings.append(Finding("hf-endpoint.trailing-slash", "error",
                                f"HF_ENDPOINT ends with '/' and huggingface_hub {hub_version} keeps it: "
                                "requests go to //api/... and fail with 404",
                                "huggingface_hub strips the slash only from 0.28 on (PR #2721). Remove it, or "
                                "upgrade huggingface_hub.", fixes=["hf-endpoint"]))
    return findings


def network_findings(facts: dict, steps: dict, label: str) -> list:
    findings = []
    endpoint = steps["endpoint"]
    api = steps.get("api", {})
    env = facts.get("env", {})
    if api.get("error"):
        kind = api.get("error_kind")
        detail = {
            "timeout": "The host did not answer in time: a firewall dropping the traffic, or a dead mirror.",
            "dns": "Check the spelling of the host name; behind a company network, the proxy may be needed.",
            "refused": "Nothing listens there: a wrong port, or the mirror is down.",
            "tls": "A company proxy that inspects TLS needs its root certificate: point REQUESTS_CA_BUNDLE "
                   "and SSL_CERT_FILE at a bundle that contains it.",
            "proxy": "The proxy in HTTPS_PROXY did not let the request through; check its address and "
                     "credentials, and NO_PROXY.",
        }.get(kind, "")
        proxy = env.get("HTTPS_PROXY") or env.get("https_proxy")
        findings.append(Finding(
            "hf-endpoint.unreachable", "error", f"{label} {endpoint} cannot be reached: {api['error']}",
            detail + (f" Requests went through the proxy {proxy}." if proxy else ""),
            fixes=["hf-endpoint"], facts={"endpoint": endpoint, "error_kind": kind}))
        return findings
    sha = api.get("sha")
    if api.get("status") != 200 or not (sha and SHA.match(sha)):
        findings.append(Finding(
            "hf-endpoint.api-missing", "warning",
            f"{label} {endpoint} does not serve the model API (GET /api/models/{facts['repo']} gave "
            f"{api.get('status')})",
            "snapshot_download, 'hf download' and from_pretrained on a whole repository ask the API first and "
            "fail; single-file downloads (hf_hub_download) may still work.",
            fixes=["hf-endpoint"], facts={"status": api.get("status")}))
    small = steps.get("small", {})
    headers = small.get("headers") or {}
    if small.get("error"):
        findings.append(Finding("hf-endpoint.resolve-failed", "error",
                                f"{label} {endpoint} fails file requests: {small['error']}", fixes=["hf-endpoint"]))
    elif "x-repo-commit" not in headers:
        findings.append(Finding(
            "hf-endpoint.no-repo-commit", "error",
            f"{label} {endpoint} answers file requests without X-Repo-Commit (HEAD gave {small.get('status')}): "
            "downloads fail",
            "huggingface_hub stops with \"...does not seem to be served by a Hugging Face Hub endpoint. If "
            "HF_ENDPOINT is set...\" (older versions: \"Distant resource does not seem to be on "
            "huggingface.co\"). This is not a Hub mirror, or a proxy strips the header.",
            fixes=["hf-endpoint"], facts={"status": small.get("status")}))
    else:
        if sha and headers["x-repo-commit"] != sha:
            findings.append(Finding(
                "hf-endpoint.stale", "warning",
                f"{label} {endpoint} serves files of commit {headers['x-repo-commit'][:12]} but its API says "
                f"{sha[:12]}: the mirror's cache is stale",
                "Files may not match the revision that was asked for."))
        if not (headers.get("x-linked-etag") or headers.get("etag")):
            findings.append(Finding("hf-endpoint.no-etag", "error",
                                    f"{label} {endpoint} sends no ETag: huggingface_hub refuses the file",
                                    fixes=["hf-endpoint"]))
    unreachable = [h for h in steps.get("large_hosts", []) if not h["reachable"]]
    if unreachable:
        names = ", ".join(f"{h['host']}" + (f":{h['port']}" if h["port"] else "") for h in unreachable)
        findings.append(Finding(
            "hf-endpoint.large-files-unreachable", "error",
            f"{label} {endpoint} sends large files to {names}, which cannot be reached: small files download, "
            "model weights fail",
            "Mirrors often pass the Xet storage through unchanged (Location and Link headers naming "
            "cas-bridge.xethub.hf.co); behind a firewall those hosts must be allowed too, or the mirror must "
            "serve the files itself. " + "; ".join(f"{h['host']}: {h['error']}" for h in unreachable),
            fixes=["hf-endpoint"], facts={"hosts": unreachable}))
    return findings


def rules(facts: dict, context: RuleContext) -> list:
    findings: list = []
    env = facts.get("env", {})
    raw = env.get("HF_ENDPOINT")
    hub = facts.get("hub_version")
    saved = [p for p in (facts.get("persisted") or {}).get("startup_files", []) if p.get("managed")]
    if raw is not None and saved and effective_endpoint(raw.strip()) != effective_endpoint(saved[-1]["value"]):
        # a fix already saved the value for new terminals: this one is merely stale, no fix to repeat
        good = saved[-1]["value"]
        findings.append(Finding(
            "hf-endpoint.stale-terminal", "info",
            f"new terminals get HF_ENDPOINT={good} (saved by llmdoctor); this one still has {raw!r}",
            f"Open a new terminal, or in this one run: export HF_ENDPOINT={good}"))
        raw = good
        env = dict(env, HF_ENDPOINT=good)
    if raw is not None:
        findings += value_findings(raw, hub)
    for name, exists in (facts.get("ca_files") or {}).items():
        if not exists:
            findings.append(Finding("hf-endpoint.ca-bundle-missing", "error",
                                    f"{name} points at {env.get(name)}, which does not exist",
                                    "Every HTTPS request fails certificate verification."))
    if env.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or \
            env.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        findings.append(Finding("hf-endpoint.offline-mode", "warning",
                                "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: nothing will be downloaded",
                                "Only files already in the cache load; unset it to download."))
    if env.get("HF_HUB_ENABLE_HF_TRANSFER") and hub and not _older(hub, "1.0"):
        findings.append(Finding("hf-endpoint.hf-transfer-deprecated", "info",
                                f"HF_HUB_ENABLE_HF_TRANSFER does nothing in huggingface_hub {hub}",
                                "Since 1.0 it only warns; the Xet backend is used, tuned with "
                                "HF_XET_HIGH_PERFORMANCE=1."))

    persisted = facts.get("persisted") or {}
    stored = [p["value"] for p in persisted.get("startup_files", [])] + [
        persisted[k] if isinstance(persisted.get(k), str) else (persisted.get(k) or {}).get("value")
        for k in ("conda", "windows_user", "windows_machine") if persisted.get(k)]
    if raw and not stored:
        findings.append(Finding(
            "hf-endpoint.only-this-shell", "warning",
            "HF_ENDPOINT is set only in this shell: new terminals, services and notebook kernels will not see it",
            "It is in no startup file, conda env variable or user environment. 'llmdoctor fix --hf-endpoint' "
            "persists it (after checking the mirror works). In a notebook, set it before importing "
            "huggingface_hub, transformers or datasets: they read it once, at import "
            "('import llmdoctor.notebook; llmdoctor.notebook.check()' in the notebook tells).",
            fixes=["hf-endpoint"]))
    elif stored and raw is None:
        findings.append(Finding("hf-endpoint.not-in-this-shell", "info",
                                f"HF_ENDPOINT={stored[0]} is saved but not set here: open a new terminal"))
    elif raw and stored and effective_endpoint(raw.strip()) not in [effective_endpoint(s) for s in stored]:
        findings.append(Finding("hf-endpoint.differs-from-saved", "warning",
                                f"HF_ENDPOINT here ({raw}) differs from the saved value ({stored[0]})",
                                "New terminals will use the saved one."))

    label = "the mirror" if raw else "the Hub"
    if facts.get("offline"):
        findings.append(Finding("hf-endpoint.not-checked", "info",
                                f"{label} {facts.get('endpoint')} was not contacted (--offline)"))
    elif facts.get("network"):
        network = network_findings(facts, facts["network"], label)
        findings += network
        if not any(f.severity in ("warning", "error") for f in network):
            elapsed = facts["network"]["api"].get("elapsed_ms", 0)
            comparison = ""
            official = facts.get("official") or {}
            if official.get("status") == 200:
                comparison = f"; the official endpoint answered in {official['elapsed_ms']:.0f} ms"
            elif raw and official.get("error"):
                comparison = f"; the official endpoint is unreachable from here ({official['error']})"
            hub_text = f"; huggingface_hub {hub}" if hub else ""
            findings.append(Finding("hf-endpoint.ok", "ok",
                                    f"{label} {facts['network']['endpoint']} serves models and files "
                                    f"(API answered in {elapsed:.0f} ms{comparison}{hub_text})"))
    return findings


# ----------------------------------------------------------------------------- smoke test


def smoke_hf_endpoint(options: dict) -> dict:
    from llmdoctor.config import DEFAULT_HF

    environ = dict(os.environ)
    endpoint = intended_endpoint(environ.get("HF_ENDPOINT"))
    if not is_http_url(endpoint):
        return {"status": "fail", "message": f"HF_ENDPOINT={endpoint} is not a URL"}
    settings = {**DEFAULT_HF, **(options.get("hf") or {})}
    steps = verify_endpoint(endpoint, settings["repo"], settings["small_file"], settings["large_file"],
                            float(options.get("timeout", 3.0)), environ)
    facts = {"repo": settings["repo"], "env": {}}
    problems = [f for f in network_findings(facts, steps, "the endpoint") if f.severity == "error"]
    if problems:
        return {"status": "fail", "message": problems[0].message}
    return {"status": "pass", "message": f"{endpoint}: API, file metadata and large-file hosts all answer",
            "figures": {"api_ms": steps["api"].get("elapsed_ms")}}


HF_ENV_DOCS = "https://huggingface.co/docs/huggingface_hub/package_reference/environment_variables"
HF_DOWNLOAD_SOURCE = ("https://github.com/huggingface/huggingface_hub/blob/v0.28.0/src/huggingface_hub/"
                      "file_download.py")

FINDINGS = (
    FindingKind("hf-endpoint.ok", "ok", "the endpoint serves the model API and files as huggingface_hub expects",
                references=(HF_ENV_DOCS, "https://huggingface.co/docs/hub/api")),
    FindingKind(
        "hf-endpoint.whitespace", "error", "HF_ENDPOINT has spaces or a newline around it",
        why="huggingface_hub uses the value as it is; every URL built from it is invalid.",
        fix="Set it again without them.", fixes=("hf-endpoint",), references=(HF_ENV_DOCS,),
    ),
    FindingKind(
        "hf-endpoint.quoted", "error", "HF_ENDPOINT contains quote characters",
        why="Quotes written inside the value (setx, .env files) become part of every URL.",
        fix="Set it again without quotes.", fixes=("hf-endpoint",), references=(HF_ENV_DOCS,),
    ),
    FindingKind(
        "hf-endpoint.no-scheme", "error", "HF_ENDPOINT is not a URL (no https://)",
        why="Requests such as hf-mirror.com/api/models/... fail before reaching any server.",
        fix="Write it with https://.", fixes=("hf-endpoint",), references=(HF_ENV_DOCS,),
    ),
    FindingKind(
        "hf-endpoint.plain-http", "warning", "HF_ENDPOINT uses plain http to a public host",
        why="Model files and tokens cross the network unencrypted and can be altered on the way.",
        fix="Use https unless the mirror is on your own network.", references=(HF_ENV_DOCS,),
    ),
    FindingKind(
        "hf-endpoint.trailing-slash", "error", "HF_ENDPOINT ends with '/' and this huggingface_hub keeps it",
        why="Before 0.28 requests go to //api/... and fail with 404.",
        fix="Remove the slash, or upgrade huggingface_hub.", fixes=("hf-endpoint",),
        references=("https://github.com/huggingface/huggingface_hub/pull/2721",),
    ),
    FindingKind(
        "hf-endpoint.unreachable", "error", "the endpoint cannot be reached",
        why="Name resolution, connection, TLS or proxy failure (the message says which): every download fails.",
        fix="Correct the address, or choose a reachable mirror (the fix tries candidates).",
        fixes=("hf-endpoint",), references=(HF_ENV_DOCS,),
    ),
    FindingKind(
        "hf-endpoint.api-missing", "warning", "the endpoint does not serve the model API",
        why="snapshot_download, 'hf download' and from_pretrained of a whole repository ask the API first and "
            "fail; single-file downloads may still work.",
        fix="Use a full Hub mirror.", fixes=("hf-endpoint",), references=("https://huggingface.co/docs/hub/api",),
    ),
    FindingKind(
        "hf-endpoint.resolve-failed", "error", "the endpoint fails file requests (/resolve/...)",
        why="Every file download fails although the API may answer.",
        fix="Use another mirror.", fixes=("hf-endpoint",), references=(HF_DOWNLOAD_SOURCE,),
    ),
    FindingKind(
        "hf-endpoint.no-repo-commit", "error", "the endpoint answers file requests without X-Repo-Commit",
        why="huggingface_hub stops with '...does not seem to be served by a Hugging Face Hub endpoint' "
            "('Distant resource does not seem to be on huggingface.co' in older releases).",
        fix="Use a real Hub mirror, or a proxy that keeps the header.", fixes=("hf-endpoint",),
        references=(HF_DOWNLOAD_SOURCE,),
    ),
    FindingKind(
        "hf-endpoint.no-etag", "error", "the endpoint sends no ETag",
        why="huggingface_hub refuses a file without one.",
        fix="Use a real Hub mirror.", fixes=("hf-endpoint",), references=(HF_DOWNLOAD_SOURCE,),
    ),
    FindingKind(
        "hf-endpoint.stale", "warning", "the mirror serves files of an older commit than its API names",
        why="Files may not match the revision asked for.",
        fix="Pin a revision, or use another mirror.", references=(HF_DOWNLOAD_SOURCE,),
    ),
    FindingKind(
        "hf-endpoint.large-files-unreachable", "error",
        "the endpoint sends large files to hosts that cannot be reached",
        why="Mirrors often pass Xet storage through (Location and Link naming cas-bridge.xethub.hf.co); small "
            "files download and model weights fail.",
        fix="Allow those hosts, or use a mirror that serves the files itself.", fixes=("hf-endpoint",),
        references=("https://github.com/padeoe/hf-mirror-site/issues/50",
                    "https://huggingface.co/docs/hub/storage-backends"),
    ),
    FindingKind(
        "hf-endpoint.stale-terminal", "info", "new terminals get a corrected HF_ENDPOINT; this one has the old value",
        fix="Open a new terminal, or export the value the finding prints.",
    ),
    FindingKind(
        "hf-endpoint.ca-bundle-missing", "error",
        "REQUESTS_CA_BUNDLE / SSL_CERT_FILE / CURL_CA_BUNDLE names a missing file",
        why="Every HTTPS request fails certificate verification.",
        fix="Point it at your organisation's CA bundle, or unset it.",
        references=("https://requests.readthedocs.io/en/latest/user/advanced/#ssl-cert-verification",),
    ),
    FindingKind(
        "hf-endpoint.offline-mode", "warning", "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set",
        why="Nothing will be downloaded; only files already in the cache load.",
        fix="Unset it to download.", references=(HF_ENV_DOCS,),
    ),
    FindingKind(
        "hf-endpoint.hf-transfer-deprecated", "info", "HF_HUB_ENABLE_HF_TRANSFER does nothing in this huggingface_hub",
        why="Since 1.0 it only warns; the Xet backend is used, tuned with HF_XET_HIGH_PERFORMANCE=1.",
        fix="Unset it.", references=(HF_ENV_DOCS,),
    ),
    FindingKind(
        "hf-endpoint.only-this-shell", "warning", "HF_ENDPOINT is set only in this shell",
        why="New terminals, services and notebook kernels will not see it; libraries read it once, at import.",
        fix="Persist it (the fix checks the mirror first); in a notebook set it before importing "
            "huggingface_hub, transformers or datasets.",
        fixes=("hf-endpoint",),
        references=(HF_ENV_DOCS, "https://github.com/huggingface/huggingface_hub/issues/2152"),
    ),
    FindingKind("hf-endpoint.not-in-this-shell", "info", "HF_ENDPOINT is saved but not set in this shell",
                fix="Open a new terminal."),
    FindingKind(
        "hf-endpoint.differs-from-saved", "warning", "HF_ENDPOINT here differs from the saved value",
        why="New terminals will use the saved one.", fix="Decide which is right, and save that one.",
        fixes=(),
    ),
    FindingKind("hf-endpoint.not-checked", "info", "the endpoint was not contacted (--offline)"),
)


CHECK = Check(
    id="hf-endpoint",
    title="Hugging Face endpoint",
    probe=probe,
    rules=rules,
    order=70,
    timeout=15.0,
    smoke=(SmokeTest("hf-endpoint", "The endpoint passes the three-step verification",
                     "llmdoctor.checks.hf_endpoint:smoke_hf_endpoint", timeout=60.0),),
    findings=FINDINGS,
)
