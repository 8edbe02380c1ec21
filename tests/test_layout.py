"""The package's import graph, read from its source with ast: the recipe
imports the package, never the reverse, and ``layout`` is the bottom room
(it imports nothing of the package)."""

import ast
import pathlib

PACKAGE = "speaker_metric_learning"
SOURCE = pathlib.Path(__file__).parents[1] / "plugin" / PACKAGE


def imported_modules(path):
    """The dotted names a file imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    return names


def package_imports():
    """``{module: imported names}`` for every module of the package."""
    return {
        ".".join(
            (PACKAGE, *path.relative_to(SOURCE).with_suffix("").parts)
        ): imported_modules(path)
        for path in sorted(SOURCE.rglob("*.py"))
    }


def test_imported_modules_sees_imports_inside_functions(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("import os\ndef f():\n    from a.b import c\n")
    assert imported_modules(path) == {"os", "a.b"}


def test_the_package_never_imports_the_recipe():
    for module, names in package_imports().items():
        recipe = sorted(
            name
            for name in names
            if name in ("train", "recipes") or name.startswith("recipes.")
        )
        assert not recipe, f"{module} imports the recipe: {recipe}"


def test_layout_imports_nothing_of_the_package():
    names = package_imports()[f"{PACKAGE}.layout"]
    assert not [name for name in names if name.startswith(PACKAGE)]
