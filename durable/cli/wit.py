"""`durable wit`: write the WIT package a workflow component targets."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from durable.cli._common import fail, handle_errors
from durable.component_check import WIT_DIR


@click.command()
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("wit"),
    show_default=True,
    help="Write the package into this directory.",
)
@handle_errors
def wit(out_dir: Path) -> None:
    """Write the durable:core WIT package (world `workflow`), with the WASI it uses.

    The WASI 0.2 interfaces the host links go under DIR/deps/, so that
    `wasm-tools component embed DIR ...` and componentize-js work offline.
    Prints the files written. An existing file of the package is overwritten;
    other files in DIR are left alone.
    """
    sources = sorted(p for p in WIT_DIR.rglob("*.wit") if p.is_file())
    written = []
    try:
        for src in sources:
            target = out_dir / src.relative_to(WIT_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            written.append(target)
    except OSError as exc:
        where = exc.filename or out_dir
        fail(f"cannot write {where}: {exc.strerror}")
    for path in written:
        click.echo(str(path))
