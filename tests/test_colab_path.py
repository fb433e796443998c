"""The Colab path: one chapter run the way Colab runs it, on a non-editable install of the wheel built from the
checkout, in a kernel that has only the library and what pyproject.toml says it needs, from a folder outside
the repository, with the data fetched from the mirror.

What stands in for Colab:

* **a fresh interpreter** (a virtual environment made here) whose packages are exactly the library's run-time
  dependency closure: the distributions its wheel requires (its core, none of the ``book`` or ``test`` extras),
  and theirs, resolved from the wheel's metadata. Colab comes with torch and most of the scientific stack and pip
  adds the rest; here the closure is taken from this checkout's ``.venv`` (linked, not copied: torch alone is
  gigabytes), so no package is downloaded, and a dependency pyproject.toml forgets is missing in the kernel, as it
  would be on Colab. The book's tools (jupyter-book, papermill) and the test runners are left out;
* **a non-editable install** (``pip install --no-index``) of the wheel that ``pip wheel --no-deps`` builds from a
  copy of the checkout's files (the copy is deleted before the chapter runs); pip finds every dependency already
  installed or fails;
* **the chapter alone** in a temporary folder, run by papermill (this checkout's) in a kernel of that interpreter,
  with the quick profile, the data folder and the results cache in the temporary folder and ``MIFGSM_MIRROR``
  set, so that the chapter's setup cell finds the library installed and fetches its data from the mirror.

Then the parameters and setup cells of a chapter that reads data ("Face templates"), run the same way, fetch its
datasets, and a cell appended to them reports which datasets the setup cell fetched, where every module the
kernel loaded comes from, aligns and embeds one face (the dlib weights come with ``face_recognition_models``) and
imports every module of the library. The test checks that the chapter ran without an error and printed its
device line, that the setup cell fetched LFW and UTKFace from the mirror, and that nothing came from or was
written into the checkout.

Cost: about 35 s of CPU (the wheel's build, two interpreters importing torch, the chapter, one face through the
dlib model), a minute of wall time on the project's 2-core machine while other jobs ran; no network; 5 MB in the
temporary folder. ``CI=true`` turns a missing prerequisite (the mirror, git, the chapter) into a failure.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
#: The chapter run (the book's root chapter: it runs in seconds).
CHAPTER = "book/intro"
CHAPTER_FILE = ROOT / f"{CHAPTER}.ipynb"
#: A chapter that reads data: its parameters and setup cells are run, then the probe (its work would take minutes).
DATA_CHAPTER_FILE = ROOT / "book" / "templates.ipynb"
#: Where the chapter's copy prints what the probe cell found.
PROBE_MARK = "COLAB-PATH-PROBE "
KERNEL = "mifgsm-colab-path"

PROBE = f'''\
# Added by tests/test_colab_path.py: where the library came from, and what a chapter needs at run time.
import importlib, json, os, pkgutil, sys

import mifgsm_lib
from mifgsm_lib import data
from mifgsm_lib.data.datasets import MANIFEST_DIR
from mifgsm_lib.faces.alignment import align_faces
from mifgsm_lib.faces.models import embed, load_face_model

fetched = sorted(p.name for p in cfg.data_path.iterdir()) if cfg.data_path.is_dir() else []
modules = [m.name for m in pkgutil.walk_packages(mifgsm_lib.__path__, "mifgsm_lib.")]
for name in modules:
    importlib.import_module(name)
lfw = data.fetch("lfw", cfg.data_path)
face = next(lfw.glob("*/*/*_[0-9][0-9][0-9][0-9].jpg"))
templates = embed(load_face_model("dlib", device="cpu"), align_faces([face], "dlib", progress=False).chips,
                  progress=False)
files = sorted({{os.path.realpath(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)}})
print({PROBE_MARK!r} + json.dumps({{
    "mifgsm_lib": os.path.realpath(mifgsm_lib.__file__), "manifests": os.path.realpath(MANIFEST_DIR),
    "modules": modules, "lfw": str(lfw), "template_shape": list(templates.shape), "cwd": os.getcwd(),
    "data_path": str(cfg.data_path), "artifacts_path": str(cfg.artifacts_path), "fetched": fetched,
    "sys_path": [os.path.realpath(p) for p in sys.path if p], "files": files,
}}))
'''


def _unavailable(reason: str) -> None:
    """Skip where a prerequisite is missing, except in CI (``CI=true``), where that is a failure: the Colab path
    must not go untested without anyone noticing."""
    if _in_ci():
        pytest.fail(f"the Colab-path test cannot run in CI: {reason}")
    pytest.skip(reason)


def _mirror() -> Path:
    mirror = Path(os.environ.get("MIFGSM_MIRROR") or ROOT.parent / "shared" / "data")
    if not (mirror / "lfw" / "pairs.txt").is_file():
        _unavailable(f"data mirror not found at {mirror} (set MIFGSM_MIRROR)")
    return mirror.resolve()


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    return done


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of the checkout (outside .git and .venv) with its size and modification time."""
    found = {}
    for folder, dirs, names in os.walk(root):
        if Path(folder) == root:
            dirs[:] = [d for d in dirs if d not in (".git", ".venv")]
        for name in names:
            path = Path(folder) / name
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return found


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _written(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """The files of the checkout that changed between two snapshots. In CI nothing else runs meanwhile and every
    file counts; elsewhere people and their jobs may be editing the checkout meanwhile, so the sources git lists
    (tracked, or untracked and not ignored), caches of compiled modules and the results under ``.mifgsm/`` are left
    out (the kernel's module files and its folders are checked on their own)."""
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    if _in_ci():
        return changed
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], 60, cwd=ROOT).stdout
    sources = set(listed.split("\0"))
    return [p for p in changed
            if p not in sources and not p.startswith(".mifgsm/") and "__pycache__" not in Path(p).parts]


def _checkout_files(root: Path, target: Path) -> None:
    """Copy what a clone of the working tree holds (tracked and untracked files that git does not ignore)."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], 60, cwd=root).stdout
    for rel in filter(None, listed.split("\0")):
        source = root / rel
        if source.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)


def dependency_closure(requirements: list[str], site: Path) -> dict[str, metadata.Distribution]:
    """The distributions installed in ``site`` that ``requirements`` need, with theirs (extras and environment
    markers evaluated): what pip would install for them. A requirement ``site`` cannot meet is an error."""
    installed: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=[str(site)]):
        installed.setdefault(canonicalize_name(dist.metadata["Name"]), dist)
    wanted: dict[str, set[str]] = {}
    queue = [(Requirement(r), {""}) for r in requirements]
    while queue:
        req, parent_extras = queue.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in parent_extras):
            continue
        name = canonicalize_name(req.name)
        extras = set(req.extras) | {""}
        if name in wanted and extras <= wanted[name]:
            continue
        dist = installed.get(name)
        if dist is None or not req.specifier.contains(dist.version, prereleases=True):
            found = dist.version if dist else "not installed"
            raise LookupError(f"{req}: {found} in {site}; run scripts/setup.sh")
        wanted[name] = wanted.get(name, set()) | extras
        queue += [(Requirement(line), wanted[name]) for line in dist.requires or []]
    return {name: installed[name] for name in wanted}


def _link_packages(dists: dict[str, metadata.Distribution], site: Path, target: Path) -> None:
    """Link the top-level files and folders of ``dists`` (from their RECORD) from ``site`` into ``target``."""
    target.mkdir(parents=True)
    for name, dist in dists.items():
        if dist.files is None:
            raise LookupError(f"{name}: installed without a RECORD of its files in {site}")
        for top in {f.parts[0] for f in dist.files if f.parts[0] not in ("..", "__pycache__")}:
            if (site / top).exists() and not (target / top).exists():
                (target / top).symlink_to(site / top)


def _build_isolation() -> list[str]:
    """Build with this interpreter's setuptools where it meets pyproject.toml's build requirements (nothing to
    download), else in pip's isolated build environment."""
    for line in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]:
        requirement = Requirement(line)
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            return []
        if not requirement.specifier.contains(version, prereleases=True):
            return []
    return ["--no-build-isolation"]


def _wheel_metadata(wheel: Path) -> tuple[list[str], list[str]]:
    """The wheel's files and its ``Requires-Dist`` lines."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = email.parser.Parser().parsestr(zf.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
                                              .decode())
    return names, meta.get_all("Requires-Dist") or []


@pytest.mark.slow
def test_a_chapter_runs_from_the_wheel_outside_the_checkout(tmp_path: Path) -> None:
    mirror = _mirror()
    if not CHAPTER_FILE.is_file():
        _unavailable(f"{CHAPTER_FILE}: missing")
    if shutil.which("git") is None:
        _unavailable("git not found (the wheel is built from the files a clone holds)")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    before = _snapshot(ROOT)

    # The wheel, built from a copy of the checkout's files (the build writes build/ and *.egg-info beside them).
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    _checkout_files(ROOT, source)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *_build_isolation(), "--disable-pip-version-check",
          "-q", "-w", str(wheels), str(source)], 300)
    shutil.rmtree(source)
    wheel = next(wheels.glob(f"mifgsm-{version}-*.whl"))
    names, requires = _wheel_metadata(wheel)
    for manifest in sorted((ROOT / "data").glob("*.yml")):
        assert f"mifgsm_lib/manifests/{manifest.name}" in names, f"the wheel lacks the manifest {manifest.name}"

    # A fresh interpreter whose packages are the wheel's run-time dependency closure, then the wheel itself.
    site = Path(sysconfig.get_paths()["purelib"])
    closure = dependency_closure(requires, site)
    left_out = {"jupyter-book", "papermill", "pytest", "nbval", "mifgsm"} & set(closure)
    assert not left_out, f"the library's run-time dependencies pull in {sorted(left_out)}"
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    kernel_site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], 60)
                       .stdout.strip())
    _link_packages(closure, site, tmp_path / "dependencies")
    (kernel_site / "_dependencies.pth").write_text(f"import site; site.addsitedir({str(tmp_path / 'dependencies')!r})\n")
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index",
                      "--disable-pip-version-check", str(wheel)], 300).stdout
    assert f"Successfully installed mifgsm-{version}" in installed, installed

    # The book's tools are not part of the library: `mifgsm book` says which extra brings them.
    refused = subprocess.run([str(env_dir / "bin" / "mifgsm"), "book", "--no-build"], capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
    assert refused.returncode == 2 and "mifgsm[book]" in refused.stderr, refused.stderr

    # The chapter alone in a folder outside the checkout, in a kernel of that interpreter.
    kernels = tmp_path / "jupyter" / "kernels" / KERNEL
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab path", "language": "python"}))
    work = tmp_path / "content"
    work.mkdir()
    shutil.copy(CHAPTER_FILE, work / CHAPTER_FILE.name)
    head = nbformat.read(DATA_CHAPTER_FILE, as_version=4)
    setup = next(i for i, c in enumerate(head.cells) if "setup" in c.metadata.get("tags", []))
    head.cells = head.cells[:setup + 1] + [nbformat.v4.new_code_cell(PROBE, metadata={"tags": ["colab-path-probe"]})]
    nbformat.write(head, work / "data_chapter_setup.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MIFGSM_", "PYTHON", "JUPYTER", "VIRTUAL_ENV"))}
    env.update(MIFGSM_MIRROR=str(mirror), MIFGSM_DATA=str(tmp_path / "data"),
               MIFGSM_ARTIFACTS=str(tmp_path / "artifacts"), MIFGSM_PROFILE="quick",
               JUPYTER_PATH=str(tmp_path / "jupyter"), VIRTUAL_ENV=str(env_dir),
               PATH=f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    outputs = {}
    for notebook in (CHAPTER_FILE.name, "data_chapter_setup.ipynb"):
        executed = work / f"executed-{notebook}"
        run = subprocess.run([sys.executable, "-m", "papermill", notebook, executed.name, "-k", KERNEL,
                              "-p", "profile", "quick", "--cwd", str(work), "--no-progress-bar"],
                             capture_output=True, text=True, timeout=900, cwd=work, env=env)
        out = nbformat.read(executed, as_version=4) if executed.is_file() else None
        errors = [o for c in (out.cells if out else []) for o in c.get("outputs", []) if o.output_type == "error"]
        assert run.returncode == 0 and not errors, f"{notebook} failed:\n{run.stderr[-4000:]}\n" + \
            "\n".join(f"{o.ename}: {o.evalue}" for o in errors)
        outputs[notebook] = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", [])
                                    if o.output_type == "stream")

    text = outputs[CHAPTER_FILE.name]
    assert re.search(r"(^|\W)device: cpu\b", text), f"no device line in the chapter's output:\n{text[:2000]}"
    probed = outputs["data_chapter_setup.ipynb"]
    probe = json.loads(next(line for line in probed.splitlines() if line.startswith(PROBE_MARK))[len(PROBE_MARK):])
    assert {"lfw", "utkface"} <= set(probe["fetched"]), f"the setup cell fetched only {probe['fetched']}"

    # The library came from the installed wheel, and nothing the kernel loaded came from the checkout.
    installed_at = Path(os.path.realpath(kernel_site))
    assert Path(probe["mifgsm_lib"]).is_relative_to(installed_at), probe["mifgsm_lib"]
    assert Path(probe["manifests"]) == installed_at / "mifgsm_lib" / "manifests", probe["manifests"]
    linked = site.resolve()  # the dependencies, linked from this checkout's .venv
    from_checkout = [f for f in probe["files"] + probe["sys_path"]
                     if Path(f).is_relative_to(ROOT) and not Path(f).is_relative_to(linked)]
    assert not from_checkout, f"the kernel used the checkout: {from_checkout[:5]}"
    assert {"mifgsm_lib.page", "mifgsm_lib.faces.models", "mifgsm_lib.data.store"} <= set(probe["modules"])
    assert probe["template_shape"] == [1, 128]
    for key in ("cwd", "data_path", "artifacts_path"):
        assert Path(probe[key]).resolve().is_relative_to(tmp_path.resolve()), (key, probe[key])

    # The data were fetched from the mirror into the data folder.
    lfw = tmp_path / "data" / "lfw"
    assert Path(probe["lfw"]) == lfw
    assert lfw.resolve() == (mirror / "lfw").resolve() or (lfw / "pairs.txt").is_file(), f"{lfw}: not fetched"

    # Nothing was written into the checkout.
    written = _written(before, _snapshot(ROOT))
    assert not written, f"the run wrote into the checkout: {written[:10]}"
