"""Model updates from the server: download published artefacts, verify sha256, switch over or shadow."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edge.classify import ClassifierStage
from edge.health import HealthBoard
from edge.supervise import supervised

log = logging.getLogger(__name__)

ARTEFACT_FILES = {"model": "model.onnx", "head": "head.npz", "gallery": "gallery.npz"}
MAX_ARTEFACT_BYTES = 512 * 1024 * 1024
# Names and versions become folder names here: the server's rule, checked again on the station.
SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]*(?:\.[A-Za-z0-9_+-]+)*")
MAX_PART = 64


class ArtefactError(ValueError):
    """A published artefact cannot be used: bad hash, bad manifest, or it does not load."""


@dataclass(frozen=True)
class Artefact:
    name: str
    kind: str
    version: str
    sha256: str
    mode: str
    manifest: dict[str, Any]
    url: str

    @property
    def ident(self) -> str:
        return f"{self.kind} {self.name} {self.version} ({self.mode})"


def parse_listing(items: Any) -> list[Artefact]:
    if not isinstance(items, list):
        raise ArtefactError("model listing is not a list")
    out = []
    for item in items:
        try:
            art = Artefact(
                name=str(item["name"]),
                kind=str(item["kind"]),
                version=str(item["version"]),
                sha256=str(item["sha256"]),
                mode=str(item["mode"]),
                manifest=dict(item.get("manifest") or {}),
                url=str(item["url"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtefactError(f"model listing entry malformed: {exc}") from exc
        if art.kind in ARTEFACT_FILES and art.mode in ("active", "shadow"):
            out.append(art)
    return out


class ModelUpdater:
    """Background thread; a failed update is reported on the health board and the running model stays."""

    def __init__(
        self,
        stage: ClassifierStage,
        client: httpx.Client,
        folder: Path,
        health: HealthBoard,
        interval_s: float = 60.0,
    ) -> None:
        self.stage = stage
        self.client = client
        self.folder = folder
        self.health = health
        self.interval_s = interval_s
        self.applied: dict[tuple[str, str], str] = {}
        self.failed: set[str] = set()
        self.gallery_digest = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one round -------------------------------------------------------------------------------

    def check_once(self) -> list[str]:
        """Apply whatever the server publishes that this station does not run yet; returns what changed."""
        if self.stage.live is None:
            return []
        resp = self.client.get("/api/v1/models")
        resp.raise_for_status()
        changed = []
        for art in parse_listing(resp.json()):
            key = (art.kind, art.mode)
            if self.applied.get(key) == art.version or art.ident in self.failed:
                continue
            try:
                self._apply(art)
            except (ArtefactError, OSError, httpx.HTTPError) as exc:
                # Keep the running model; say loudly that the new one was refused, once per version.
                self.failed.add(art.ident)
                log.error("model update %s refused: %s", art.ident, exc)
                self.health.report("model", True, f"{self.stage.describe}; update refused: {exc}")
                continue
            self.applied[key] = art.version
            changed.append(art.ident)
            self.health.report("model", True, self.stage.describe)
        changed += self.sync_gallery()
        return changed

    def _target(self, art: Artefact) -> Path:
        """Where the artefact lives, refused unless it is inside the models folder."""
        for label, part in (("name", art.name), ("version", art.version)):
            if len(part) > MAX_PART or not SAFE_PART.fullmatch(part):
                raise ArtefactError(f"{art.kind} artefact {label} {part[:80]!r} is not a safe folder name")
        root = self.folder.resolve()
        target = (root / art.kind / art.name / art.version / ARTEFACT_FILES[art.kind]).resolve()
        # Resolving follows links too: a folder linked to elsewhere is as outside as "..".
        if not target.is_relative_to(root):
            raise ArtefactError(f"{art.ident} would be written outside the models folder")
        return target

    def _download(self, art: Artefact) -> Path:
        target = self._target(art)
        if not art.url.startswith("/api/v1/models/"):
            # An absolute URL would send this station's token to another host.
            raise ArtefactError(f"{art.ident}: download URL is not on this server")
        if target.is_file() and _sha256(target) == art.sha256:
            return target
        resp = self.client.get(art.url)
        resp.raise_for_status()
        data = resp.content
        if len(data) > MAX_ARTEFACT_BYTES:
            raise ArtefactError(f"{art.ident} is over {MAX_ARTEFACT_BYTES} bytes")
        got = hashlib.sha256(data).hexdigest()
        if got != art.sha256:
            raise ArtefactError(
                f"{art.ident}: downloaded sha256 {got[:12]} is not the published {art.sha256[:12]}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(target)  # a half-written file is never taken for a model
        return target

    def _apply(self, art: Artefact) -> None:
        path = self._download(art)
        paths = dict(self.stage.paths)
        if art.kind == "model":
            # A published manifest may name only what changed (file, sha256, version...): the
            # rest (input spec, labels) comes from the running model's, and loading checks it all.
            current = self.stage.paths.get("manifest")
            manifest: dict[str, Any] = {}
            if current is not None:
                manifest = json.loads(Path(current).read_text(encoding="utf-8"))
            manifest.update(art.manifest)
            if manifest.get("sha256") != art.sha256:
                raise ArtefactError(f"{art.ident}: its manifest does not name the published sha256")
            manifest["file"] = path.name
            manifest_path = path.with_name("manifest.json")
            manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
            paths["manifest"] = manifest_path
        else:
            paths[art.kind] = path
        try:
            self.stage.swap(paths, shadow=art.mode == "shadow")
        except ValueError as exc:
            raise ArtefactError(f"{art.ident} does not load: {exc}") from exc
        log.info("model update applied: %s", art.ident)
        if art.kind == "model" and art.mode == "active":
            self.gallery_digest = ""  # references must be embedded again by the new backbone

    def sync_gallery(self) -> list[str]:
        """Embed the references officers confirmed (seize, detain) into the live model's gallery."""
        live = self.stage.live
        if live is None:
            return []
        resp = self.client.get("/api/v1/models/gallery", params={"limit": 10000})
        resp.raise_for_status()
        body = resp.json()
        if body.get("digest") == self.gallery_digest:
            return []
        from models.gallery import Gallery

        gallery = live.gallery or Gallery.empty(live.manifest.embedding.dim, live.manifest.version)
        known = {e.ref_id for e in gallery.entries}
        added = []
        for ref in body.get("refs", []):
            ref_id = str(ref.get("ref_id", ""))
            kind = str(ref.get("kind") or "camera")
            if not ref_id or ref_id in known or kind == "label":
                continue
            image_url = str(ref.get("image_url", ""))
            if not image_url.startswith("/api/v1/images/"):  # never send the token to another host
                log.warning("gallery image %s has a URL off this server; skipped", ref_id)
                continue
            img = self.client.get(image_url)
            if img.status_code != 200:
                log.warning("gallery image %s not available (HTTP %d)", ref_id, img.status_code)
                continue
            try:
                emb = live.embed([live.preprocess(img.content, kind)])[0]
            except ValueError as exc:
                log.warning("gallery image %s unusable: %s", ref_id, exc)
                continue
            gallery = gallery.add(emb, ref_id, str(ref.get("label", "counterfeit")), "officer decision", kind)
            added.append(f"gallery reference {ref_id}")
        if added:
            live.gallery = gallery
            self.health.report("model", True, self.stage.describe)
        self.gallery_digest = str(body.get("digest", ""))
        return added

    # -- thread ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = supervised(self._loop, "edge-models", self._stop, on_give_up=self.health.crashed)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.check_once()
                failures = 0
            except (httpx.HTTPError, ArtefactError, OSError, ValueError) as exc:
                if failures == 0:
                    log.warning("model check failed, will retry: %s", exc)
                failures += 1
            self._stop.wait(self.interval_s)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
