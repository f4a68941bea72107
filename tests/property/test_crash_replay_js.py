"""The crash-at-every-write property on a JavaScript guest: one smoke profile.

`workflows_js/script.js` interprets the same scripts as the Python script workflow,
with the same labels and digests, so the same model and checks apply: for every
write of a reference run, a task crashed before and after it resumes to the same end.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import example, given, settings

from durable.host import Runtime
from durable.js_build import build_js_workflow
from durable.loader import compile_for_machine
from tests.property.harness import SHRINK_TIMEOUT, Component, open_backend
from tests.property.http_server import CountingServer
from tests.property.scripts import SPECS, Script, scripts
from tests.property.test_crash_replay import SEEDS, _check_every_crash_point

HERE = Path(__file__).resolve().parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

#: Every operation the JavaScript interpreter has, a suspension and a child in the
#: middle, and a failure at the end.
JS_SCRIPT: Script = [
    {"op": "random"},
    {"op": "uuid"},
    {"op": "print", "text": "a"},
    {"op": "step", "arg": 3},
    {"op": "step_error", "arg": 4},
    {"op": "step_random", "arg": 1},
    {"op": "random"},
    {"op": "step_print", "arg": 2},
    {"op": "sleep"},
    {"op": "long_sleep"},
    {"op": "print", "text": "b"},
    {"op": "http"},
    {"op": "wait"},
    {"op": "spawn", "arg": 6},
    {"op": "sql_insert", "arg": 7},
    {"op": "raise"},
]


#: The operations the JavaScript interpreter has (see `workflows_js/script.js`); the JS
#: SDK has no `patched` yet.
JS_OPS = sorted(set(SPECS) - {"now", "notify_wait", "patched", "deprecate_patch"})
#: A smoke profile: the fixed script above, and a few generated ones.
JS_EXAMPLES = 3


@pytest.fixture(scope="module")
def js_component(http_server: CountingServer) -> Component:
    wasm = build_js_workflow(HERE / "workflows_js" / "script.js").wasm_path.read_bytes()
    compile_for_machine(wasm)  # first, so that no run of the property waits for it
    return Component(wasm=wasm, hash=hashlib.sha256(wasm).hexdigest())


@pytest.mark.anyio
@SHRINK_TIMEOUT
@pytest.mark.parametrize("config", ["per-event"])
@given(script=scripts(names=JS_OPS, max_ops=6, max_long_sleeps=1), seed=SEEDS)
@example(script=JS_SCRIPT, seed=7)
@settings(max_examples=JS_EXAMPLES)
async def test_every_crash_point_of_a_js_guest_resumes_to_the_same_end(
    js_component: Component,
    runtimes: dict[str, Runtime],
    http_server: CountingServer,
    config: str,
    script: Script,
    seed: int,
) -> None:
    async with open_backend("sqlite") as store:
        await _check_every_crash_point(
            store, runtimes, config, js_component, http_server, script, seed, "sqlite"
        )


@given(script=scripts(names=JS_OPS, max_ops=6, max_long_sleeps=1))
@settings(max_examples=200, database=None)
def test_generated_js_scripts_use_only_what_the_js_interpreter_has(script: Script) -> None:
    # A short script is padded to its minimum length: with an operation it has.
    assert {op["op"] for op in script} <= set(JS_OPS)
