"""A ``--run`` command that writes watched files as it starts does not restart itself.

README's kubebuilder recipe is ``--run "make run"``, and ``make run`` first runs ``make
generate``, which rewrites ``zz_generated.deepcopy.go``; each write used to count as a save
and restart it, for ever (issue 24). Here the Node example's command writes two watched
files on each start: one with the same bytes each time (like ``make generate``), one with
new bytes each time (a generator that stamps its output).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.conftest import Served
from tests.process.test_serve_upstream import version_of
from tests.upstream_fixtures import LanguageProject

SETTLE_SECONDS = 4.0  # several watcher debounces and Node starts


def generating_run(project: LanguageProject) -> str:
    return (
        "printf 'module.exports = 1;\\n' > zz_same.js"
        " && date +%s%N > zz_stamp.json"
        f" && node server.js --port {project.port}"
    )


def test_files_the_run_command_writes_while_starting_restart_nothing_and_an_edit_still_does(
    serve: Callable[..., Served], node_project: LanguageProject
) -> None:
    served = serve(
        "--upstream", node_project.url, "--run", generating_run(node_project),
        "--port", "0", "--no-record", cwd=node_project.path,
    )  # fmt: skip
    served.wait_for(r"generation 1 ready", timeout=120)
    time.sleep(SETTLE_SECONDS)
    assert "generation 2" not in served.output, served.output
    assert version_of(served) == "v1"

    mark = len(served.lines)
    node_project.set_version("v2")
    served.wait_for(r"reloading: changed version\.js", after=mark, timeout=60)
    served.wait_for(r"generation 2 ready", after=mark, timeout=120)
    served.wait_for(
        r"not reloading for zz_stamp\.json: changed while `.*node server\.js.*` started",
        after=mark,
        timeout=30,
    )
    time.sleep(SETTLE_SECONDS)
    assert "generation 3" not in served.output
    passed_over = [
        line.partition(": changed while")[0]
        for line in served.lines[mark:]
        if line.startswith("not reloading for")
    ]
    assert passed_over == ["not reloading for zz_stamp.json"]  # zz_same.js: the same bytes
    assert version_of(served) == "v2"
