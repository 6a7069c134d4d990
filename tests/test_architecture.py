"""The layout rules of ARCHITECTURE.md, held statically (every import statement) and at run time."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PKG = REPO / "annpred"
MAX_LINES = 450  # "no module over about 400 lines"

FITTING = ("annpred.model.fit", "annpred.model.estimator", "annpred.model.trainer")
HEAVY = ("torch", "halide", "pandas", "sklearn", "scipy")

# (importer prefix, forbidden prefixes): an import whose target starts with a forbidden prefix
# fails the test, whether at module level or inside a function.
RULES = [
    ("annpred.runtime", FITTING + ("annpred.measure", "annpred.study", "annpred.cli",
                                   "annpred.halide", "annpred.data.profiles") + HEAVY),
    ("annpred.select", FITTING + ("annpred.measure", "annpred.study") + HEAVY),
    ("annpred.model", ("annpred.measure", "annpred.runtime", "annpred.study", "annpred.cli",
                       "annpred.select", "annpred.halide")),
    ("annpred.spec", ("annpred.measure", "annpred.data", "annpred.model", "annpred.runtime",
                      "annpred.study", "annpred.cli", "annpred.select", "annpred.halide")),
    ("annpred.data", ("annpred.measure", "annpred.model", "annpred.runtime", "annpred.study",
                      "annpred.cli", "annpred.select", "annpred.halide")),
    ("annpred.data.rows", ("pandas",)),
    ("annpred.study", ("annpred.cli", "annpred.measure", "annpred.runtime.dispatch")),
]
# The one named bridge from the decision side to training (ARCHITECTURE.md, rule 1).
ALLOWED = {("annpred.runtime.feedback", "annpred.model.retrain")}
# The decision path may use threadpoolctl (dispatch's thread limits), and optional imports of
# torch inside functions that only run when a variant or GPU needs it: listed here by module.
ALLOWED_HEAVY_INSIDE = {
    ("annpred.runtime.transfer", "torch"),  # calibrate_transfer, only with a CUDA GPU
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path):
    """(target module, line, inside a function?) of every import statement in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    mod = _module_name(path)
    is_pkg = path.name == "__init__.py"
    out = []

    def visit(node, nested):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, nested) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                out.append((target, child.lineno, nested))
                for a in child.names:  # "from annpred.model import fit" imports a module
                    out.append((f"{target}.{a.name}", child.lineno, nested))
            visit(child, inner)

    visit(tree, False)
    return mod, out


def _all_modules():
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def _starts(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_no_forbidden_imports_between_subpackages():
    bad = []
    for path in _all_modules():
        mod, imports = _imports(path)
        for importer, forbidden in RULES:
            if not _starts(mod, importer):
                continue
            for target, line, nested in imports:
                for f in forbidden:
                    if not _starts(target, f) or (mod, f) in ALLOWED:
                        continue
                    if nested and (mod, f) in ALLOWED_HEAVY_INSIDE:
                        continue
                    bad.append(f"{path.relative_to(REPO)}:{line}: {mod} imports {target} "
                               f"(rule: {importer} never imports {f})")
    assert not bad, "forbidden imports:\n" + "\n".join(sorted(set(bad)))


def test_the_static_check_can_fail(tmp_path):
    """The walker sees nested and relative imports (so the rule test is not vacuous)."""
    fake = PKG / "runtime" / "_probe_for_test.py"
    fake.write_text("def f():\n    from ..model import fit\n    import torch\n")
    try:
        mod, imports = _imports(fake)
        targets = {t for t, _, nested in imports if nested}
        assert "annpred.model.fit" in targets and "torch" in targets
    finally:
        fake.unlink()


def test_modules_are_small():
    big = [f"{p.relative_to(REPO)}: {n} lines" for p in _all_modules()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not big, "modules over the size limit:\n" + "\n".join(big)


@pytest.mark.parametrize("code", [
    "import annpred.runtime.choose, annpred.runtime.dispatch, annpred.runtime.predictor, "
    "annpred.runtime.export_c, annpred.runtime.feedback, annpred.select",
    "import annpred; annpred.choose('matmul', dict(m=64, n=64, k=64, da=1, db=1), "
    "candidates=['numpy@cpu-amd-epyc-t1', 'torch@cpu-amd-epyc-t1'], policy='extrapolate')",
])
def test_runtime_side_loads_no_heavy_library(code):
    check = ("; import sys; bad = [m for m in ('torch', 'halide', 'pandas', 'sklearn') "
             "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code + check], check=True, cwd=REPO, timeout=120)


def test_shipped_root_lists_kernels_only():
    """Halide schedule models and data folders under a model root are not kernel models."""
    import annpred
    from annpred.model.layout import shipped_root

    kernels = annpred.load_models(str(shipped_root())).kernels()
    assert kernels and not [k for k in kernels if k.startswith("halide")]


@pytest.mark.slow
def test_wheel_is_self_contained(tmp_path):
    """`pip wheel .` packs the catalog as annpred.kernels and the shipped models as package
    data, and claims no top-level name but annpred."""
    import zipfile

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), str(REPO)], capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {r.stderr.strip()[-300:]}")
    wheel = next(tmp_path.glob("annpred-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"annpred"}, tops
    assert "annpred/kernels/matmul.py" in names
    assert any(n.startswith("annpred/trained/") and n.endswith("/matmul/numpy.json")
               for n in names)
    assert "annpred/halide/pipelines/blur.py" in names
