"""`durable build`: compile a Python workflow into a component."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from durable.cli._common import fail, handle_errors, progress


@click.command()
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the component here.")
@handle_errors
def build(workflow: Path, output: Path | None) -> None:
    """Build WORKFLOW (.py, or .js with componentize-js) into a component (cached).

    Prints the component's path on stdout.
    """
    from durable.loader import JS_SUFFIXES

    if workflow.suffix in JS_SUFFIXES:
        from durable.js_build import build_js_workflow  # here: `durable --help` loads less

        with progress(f"building {workflow.name}"):
            result = build_js_workflow(workflow)
    elif workflow.suffix != ".py":
        fail(f"{workflow}: durable build takes a Python (.py) or JavaScript (.js) workflow")
    else:
        from durable.builder import build_workflow  # here: `durable --help` loads less

        with progress(f"building {workflow.name}"):
            result = build_workflow(workflow)
    target = result.wasm_path
    if output is not None:
        try:
            shutil.copyfile(result.wasm_path, output)
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror}")
        target = output
    size = target.stat().st_size / 1e6
    how = "cached" if result.cached else f"built in {result.seconds:.1f}s"
    click.echo(f"{workflow.name}: {size:.1f} MB, {how}", err=True)
    click.echo(str(target))
