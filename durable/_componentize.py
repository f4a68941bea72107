"""Child-process entry for `durable build`: runs componentize-py in isolation.

Usage: python -m durable._componentize WIT_DIR WORLD APP_MODULE OUTPUT PATH...
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Run componentize-py in-process with exactly the given module path."""
    import componentize_py

    wit_dir, world, app, output, *python_path = argv
    try:
        componentize_py.componentize(
            wit_path=[wit_dir],
            worlds=[world],
            features=[],
            all_features=False,
            world_module=None,
            python_path=python_path,
            module_worlds=[],
            app_name=app,
            output_path=output,
            stub_wasi=False,
            import_interface_names=[],
            export_interface_names=[],
            full_names=False,
            intersect_world=None,
        )
    except Exception as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
