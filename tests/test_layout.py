"""How the code base is laid out, read from its source with ast: the
recipe imports the package, never the reverse; ``layout`` is the bottom
room (it imports nothing of the package); the package's imports form no
cycle, and scoring and model I/O never import what builds on them; a file
over 600 lines says why it is one file."""

import ast
import pathlib

PACKAGE = "speaker_metric_learning"
SOURCE = pathlib.Path(__file__).parents[1] / "plugin" / PACKAGE
ROOT = SOURCE.parents[1]


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


def own_imports():
    """``{module: modules of the package it imports}`` (names of modules,
    not of the objects imported from them)."""
    graph = package_imports()
    modules = set(graph)
    return {
        module: {
            name
            for name in names
            if name in modules or f"{name}.__init__" in modules
        }
        for module, names in graph.items()
    }


def find_cycle(graph):
    """An import cycle of ``graph`` as ``[a, b, ..., a]``, or None."""
    finished, path = set(), []

    def visit(module):
        if module in path:
            return path[path.index(module) :] + [module]
        if module in finished:
            return None
        path.append(module)
        for name in graph.get(module, ()):
            cycle = visit(name if name in graph else f"{name}.__init__")
            if cycle:
                return cycle
        path.pop()
        finished.add(module)
        return None

    return next(filter(None, map(visit, graph)), None)


def test_the_import_graph_has_no_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [
        "a", "b", "c", "a"
    ]  # fmt: skip
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert find_cycle(own_imports()) is None


def test_scoring_and_model_io_never_import_what_builds_on_them():
    higher = {f"{PACKAGE}.{name}" for name in ("export", "model_card")}
    for module, names in own_imports().items():
        if module.startswith(f"{PACKAGE}.scoring") or module.endswith(
            ".model_io"
        ):
            assert not names & higher, f"{module} imports {names & higher}"
    model_io = own_imports()[f"{PACKAGE}.model_io"]
    assert not [n for n in model_io if n.startswith(f"{PACKAGE}.scoring")]


def test_command_lines_are_imported_only_to_be_run():
    """What a command line uses and others need lives in a library module:
    nothing imports ``scoring.cli`` but its ``__main__``."""
    cli = f"{PACKAGE}.scoring.cli"
    sources = {
        path: imported_modules(path)
        for path in [
            ROOT / "train.py",
            *sorted((ROOT / "plugin").rglob("*.py")),
            *sorted((ROOT / "recipes").rglob("*.py")),
            *sorted((ROOT / "benchmarks").rglob("*.py")),
        ]
    }
    importers = sorted(
        str(path.relative_to(ROOT))
        for path, names in sources.items()
        if cli in names and path.name != "__main__.py"
    )
    assert not importers, importers
    assert cli in sources[SOURCE / "scoring" / "__main__.py"]


#: Longest source file that needs no word of explanation.
MAX_LINES = 600


def long_files_without_a_reason(paths, max_lines=MAX_LINES):
    """Files over ``max_lines`` lines whose module docstring has no
    paragraph starting with ``One file:`` (why it is one cohesive thing)."""
    unexplained = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= max_lines:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        paragraphs = [p.strip() for p in docstring.split("\n\n")]
        if not any(p.startswith("One file:") for p in paragraphs):
            unexplained.append(path)
    return unexplained


def test_long_files_say_why_they_are_one_file(tmp_path):
    long = tmp_path / "long.py"
    long.write_text('"""Doc."""\n' + "x = 1\n" * 30)
    explained = tmp_path / "explained.py"
    explained.write_text('"""Doc.\n\nOne file: it is.\n"""\n' + "x = 1\n" * 30)
    found = long_files_without_a_reason([long, explained], max_lines=20)
    assert found == [long]
    sources = [
        ROOT / "train.py",
        *sorted((ROOT / "plugin").rglob("*.py")),
        *sorted((ROOT / "recipes").rglob("*.py")),
        *sorted((ROOT / "benchmarks").rglob("*.py")),
        *sorted((ROOT / "tests").glob("*.py")),
    ]
    unexplained = long_files_without_a_reason(sources)
    assert not unexplained, [str(p.relative_to(ROOT)) for p in unexplained]
