"""pytest wiring for the fault harness (harness.py, test_faults.py).

Every test builds its own lab of network namespaces and tears it down,
agents first, whatever the outcome; a failed test gets each agent's log
attached. At the end of the session the results table (scenario, load,
faults injected, acknowledged ops, lost, violations) is printed and
written to $DMKV_FAULT_RESULTS (default build/fault-results.md under the
repository), ready for docs/RELIABILITY.md.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))


def results_path():
    return os.environ.get("DMKV_FAULT_RESULTS") or os.path.join(REPO, "build", "fault-results.md")


@pytest.fixture(autouse=True)
def need_netns():
    reason = harness.netns.unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def lab3(request):
    """A 3-host lab; on failure the agents' logs (request.node._agents)
    are attached."""
    with harness.NetnsLab(3, tag="fault") as lab:
        yield lab


@pytest.fixture(autouse=True)
def _results_mark(request):
    request.node._rows_before = len(harness.RESULTS)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when == "call" and len(harness.RESULTS) == getattr(item, "_rows_before", -1):
        # The scenario failed before it could record its row: say so in
        # the table rather than leave it out.
        msg = str(call.excinfo.value).strip().splitlines()[0][:300] if call.excinfo else "failed"
        harness.record(item.name, "-", "-", "-", "-", "scenario failed: %s" % msg.replace("|", "/"))
    if rep.failed:
        for a in getattr(item, "_agents", []):
            log = a.read_log()
            if len(log) > 15000:
                log = "...\n" + log[-15000:]
            rep.sections.append(("dmkv %s log (%s)" % (a.name, a.log_path), log))


def pytest_terminal_summary(terminalreporter):
    if not harness.RESULTS:
        return
    table = harness.results_table()
    path = results_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("Fault harness, %s suite (DMKV_FAULT_MODE=%s)\n\n" % (
                "long" if harness.LONG else "short", "long" if harness.LONG else "short"))
            f.write(table)
        where = "written to %s" % path
    except OSError as e:
        where = "could not write %s: %s" % (path, e)
    terminalreporter.write_sep("=", "fault results (%s)" % where)
    terminalreporter.write(table)
